// with-deps: a function that bundles an npm dependency. GET /default/with-deps?in=90m answers
// {"input":"90m","ms":5400000,"human":"2 hours"}; `ms` is pure JavaScript, so it runs in an isolate.
import type { Handler, HttpRequest } from "kumo/runtime";
import ms from "ms";

const handler: Handler<HttpRequest> = (req, ctx) => {
  const input = req.query.in ?? "1h";
  const millis = ms(input);
  if (Number.isNaN(millis)) {
    return { status: 400, body: { error: `"${input}" is not a duration: try 90m, 2h or 1d` } };
  }
  ctx.log.info(`${input} is ${millis} ms`);
  return { input, ms: millis, human: ms(millis, { long: true }) };
};

export default handler;

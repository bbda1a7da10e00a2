// hello-http: the smallest Kumo function. GET /default/hello-http?name=kumo answers
// {"message":"hello, kumo"} and logs one line to the invocation record (`kumo logs hello-http`).
import type { Handler, HttpRequest } from "kumo/runtime";

const handler: Handler<HttpRequest> = (req, ctx) => {
  const name = req.query.name ?? "world";
  ctx.log.info(`greeting ${name}`);
  return { message: `hello, ${name}` };
};

export default handler;

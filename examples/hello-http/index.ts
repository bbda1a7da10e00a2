// hello-http: the smallest Kumo function. GET /default/hello-http?name=kumo answers
// {"message":"hello, kumo"} and logs one line to the invocation record (`kumo logs hello-http`).
// The same handler takes events too (one signature for HTTP and CloudEvents): give it a trigger
// and it logs each event it receives.
import { isCloudEvent, type CloudEvent, type Handler, type HttpRequest } from "kumo/runtime";

const handler: Handler<HttpRequest | CloudEvent> = (input, ctx) => {
  if (isCloudEvent(input)) {
    ctx.log.info(`received ${input.type} from ${input.source} (${input.id})`);
    return { received: input.id };
  }
  const name = input.query.name ?? "world";
  ctx.log.info(`greeting ${name}`);
  return { message: `hello, ${name}` };
};

export default handler;

// The baseline for the hot-path benchmark: the smallest node:http server that answers what the
// hello function answers. Prints its port on stdout.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const q = req.url?.indexOf("?") ?? -1;
  const name = q >= 0 ? (new URLSearchParams(req.url!.slice(q + 1)).get("name") ?? "world") : "world";
  const body = JSON.stringify({ message: `hello, ${name}` });
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
});
server.listen(0, "127.0.0.1", () => console.log((server.address() as AddressInfo).port));
process.on("SIGTERM", () => server.close(() => process.exit(0)));

// The test DNS server (test/helpers/dns-server.ts, built into dist-test/) in its own process,
// so the benchmark's resolver has a core to itself. Serves N names n<i>.bench (A, TTL 1 h)
// and prints its URLs and CA as one JSON line.
import { startDnsServer } from "../dist-test/dns-server.js";

const names = Number(process.argv[2] ?? 1000);
const server = await startDnsServer({ keepLog: false });
for (let i = 0; i < names; i++)
  server.set(`n${i}.bench`, "A", [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`], 3600);
process.stdout.write(`${JSON.stringify({ urls: server.urls, ca: server.ca })}\n`);
process.on("SIGTERM", () => {
  server.close().then(() => process.exit(0));
});

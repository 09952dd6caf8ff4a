// A local stand-in for Twilio's Messages API and media URLs, with injected failures.
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";

// 1x1 PNG.
export const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000201e2a0e7e80000000049454e44ae426082",
  "hex",
);

export async function startFakeTwilio({ accountSid, authToken }) {
  const expectedAuth = "Basic " + Buffer.from(`${accountSid}:${authToken}`).toString("base64");
  const fake = {
    // What to do with the next Messages API requests: "ok", "500", "503", "timeout", "400", "429".
    script: [],
    // When the script is empty.
    fallback: "ok",
    attempts: [],
    sent: [],
    mediaRequests: [],
    flakyMediaLeft: 1,
    base: "",
  };
  const held = new Set();
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => handle(req, res, Buffer.concat(chunks).toString("utf8")));
  });
  server.on("connection", (s) => {
    held.add(s);
    s.on("close", () => held.delete(s));
  });

  function json(res, status, body) {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }

  function handle(req, res, body) {
    const url = new URL(req.url, "http://x");
    if (req.method === "POST" && url.pathname === `/2010-04-01/Accounts/${accountSid}/Messages.json`) {
      if (req.headers.authorization !== expectedAuth) {
        return json(res, 401, { code: 20003, message: "Authenticate", status: 401 });
      }
      const params = new URLSearchParams(body);
      const action = fake.script.length ? fake.script.shift() : fake.fallback;
      fake.attempts.push({ action, body: params.get("Body"), at: Date.now() });
      switch (action) {
        case "timeout":
          return; // Never answer: the client's timeout decides.
        case "500":
        case "503":
          return json(res, Number(action), { code: 20500, message: "Internal Server Error", status: Number(action) });
        case "429":
          return json(res, 429, { code: 20429, message: "Too Many Requests", status: 429 });
        case "400":
          return json(res, 400, { code: 21211, message: "The 'To' number is not a valid phone number.", status: 400 });
        default: {
          const sid = "SM" + randomBytes(16).toString("hex");
          const msg = {
            sid,
            to: params.get("To"),
            from: params.get("From"),
            body: params.get("Body"),
            mediaUrls: params.getAll("MediaUrl"),
            contentSid: params.get("ContentSid"),
            contentVariables: params.get("ContentVariables"),
            statusCallback: params.get("StatusCallback"),
          };
          fake.sent.push(msg);
          return json(res, 201, {
            sid,
            account_sid: accountSid,
            to: msg.to,
            from: msg.from,
            body: msg.body,
            status: "queued",
            num_media: String(msg.mediaUrls.length),
            error_code: null,
            error_message: null,
            date_created: new Date().toUTCString(),
            uri: `/2010-04-01/Accounts/${accountSid}/Messages/${sid}.json`,
          });
        }
      }
    }
    if (req.method === "GET" && url.pathname.startsWith("/media/")) {
      const name = url.pathname.slice("/media/".length);
      fake.mediaRequests.push({ name, authorization: req.headers.authorization ?? null });
      if (name === "s3-image") {
        // Like a storage bucket behind a redirect: our credentials must not follow.
        if (req.headers.authorization) return json(res, 400, { message: "credentials leaked to the redirect target" });
        res.writeHead(200, { "content-type": "image/png" });
        return res.end(PNG);
      }
      if (req.headers.authorization !== expectedAuth) return json(res, 401, { code: 20003, message: "Authenticate" });
      switch (name) {
        case "image":
          res.writeHead(200, { "content-type": "image/png" });
          return res.end(PNG);
        case "redirect": {
          // Another host name for the same server, so the client sees a cross-host redirect.
          const port = new URL(fake.base).port;
          res.writeHead(302, { location: `http://localhost:${port}/media/s3-image` });
          return res.end();
        }
        case "big":
          res.writeHead(200, { "content-type": "image/png" });
          return res.end(Buffer.alloc(5000, 1));
        case "exe":
          res.writeHead(200, { "content-type": "application/x-msdownload" });
          return res.end(Buffer.from("MZ"));
        case "flaky":
          if (fake.flakyMediaLeft > 0) {
            fake.flakyMediaLeft -= 1;
            return json(res, 503, { message: "try later" });
          }
          res.writeHead(200, { "content-type": "image/png" });
          return res.end(PNG);
        default:
          return json(res, 404, { code: 20404, message: "not found" });
      }
    }
    json(res, 404, { code: 20404, message: "The requested resource was not found" });
  }

  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  fake.base = `http://127.0.0.1:${server.address().port}`;
  fake.close = async () => {
    for (const s of held) s.destroy();
    await new Promise((r) => server.close(r));
  };
  return fake;
}

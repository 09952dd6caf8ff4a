// Upgrade and back-out against the real previous release: its binary
// (PREV_UTALK_BIN, built from the commit in tests/upgrade/previous-release by
// tests/upgrade/previous-release.sh) writes data, this build takes it over,
// with its messages in the newer format, and the rollback command of
// docs/runbooks/upgrade.md, run exactly as the page writes it, lets the
// previous binary serve everything again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startServer, ADMIN, AGENT, BIN, uuid } from "./harness.mjs";

const PREV_BIN = process.env.PREV_UTALK_BIN;
const here = dirname(fileURLToPath(import.meta.url));
const runbook = readFileSync(join(here, "../../docs/runbooks/upgrade.md"), "utf8");
const [prevVersion] = readFileSync(join(here, "../upgrade/previous-release"), "utf8").trim().split(/\s+/);

// The one `utalk migrate rollback` line of the runbook's shell blocks.
function runbookRollback() {
  const lines = [...runbook.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1].split("\n"));
  const found = lines.map((l) => l.trim()).filter((l) => l.startsWith("utalk migrate rollback"));
  assert.equal(found.length, 1, `the runbook should show one rollback command, shows: ${JSON.stringify(found)}`);
  return found[0].split(/\s+/).slice(1);
}

function run(bin, args, dataDir) {
  const r = spawnSync(bin, [...args, "--data-dir", dataDir], { env: { ...process.env, UTALK_LOG: "warn" }, encoding: "utf8", timeout: 120000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

async function send(server, token, conv, text) {
  const r = await server.api("POST", `/api/v1/conversations/${conv}/messages`, { token, body: { messageId: uuid(), text } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

async function texts(server, token, conv) {
  const r = await server.api("GET", `/api/v1/conversations/${conv}/messages?limit=200`, { token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.items.map((m) => m.text);
}

function schemaOf(bin, dataDir) {
  const r = run(bin, ["migrate", "status"], dataDir);
  assert.equal(r.status, 0, r.out);
  return Number(/schema version (\d+)/.exec(r.out)[1]);
}

test(`data written by release ${prevVersion} is served by this build, and backing out as the runbook says loses nothing`, { timeout: 300000 }, async () => {
  assert.ok(PREV_BIN, "PREV_UTALK_BIN must name the previous release's binary (tests/upgrade/previous-release.sh prints it)");
  const rollbackArgs = runbookRollback();

  // 1. The previous release writes.
  let server = await startServer({}, { bin: PREV_BIN });
  const dir = server.dir;
  const dataDir = join(dir, "data");
  try {
    await server.setBot(false);
    let agent = await server.login(AGENT);
    const conv = await server.conversation(agent.accessToken);
    for (const t of ["old-1", "old-2"]) await send(server, agent.accessToken, conv, t);
    assert.equal(await server.term(), 0, "the previous release stops cleanly on SIGTERM");
    const prevSchema = schemaOf(PREV_BIN, dataDir);

    // 2. This build takes the data over: it migrates, serves it, writes more.
    server = await startServer({}, { reuse: dir });
    agent = await server.login(AGENT);
    assert.deepEqual(await texts(server, agent.accessToken, conv), ["old-1", "old-2"]);
    // Every node reads message format 2: its migration turns it on and rewrites the old messages.
    const admin = await server.login(ADMIN);
    const ran = await server.api("POST", "/api/v1/admin/jobs/data_migrations/run", { token: admin.accessToken });
    assert.equal(ran.status, 200, JSON.stringify(ran.body));
    const migrations = await server.api("GET", "/api/v1/admin/migrations", { token: admin.accessToken });
    const format = migrations.body.items.find((i) => i.name === "message_format");
    assert.deepEqual([format.state, migrations.body.readableFrom], ["done", 7], JSON.stringify(migrations.body));
    assert.ok(format.processed >= 2, JSON.stringify(format));
    await send(server, agent.accessToken, conv, "new-1");
    assert.equal(await server.term(), 0);
    const newSchema = schemaOf(BIN, dataDir);
    assert.ok(newSchema > prevSchema, `this build's schema ${newSchema} should be newer than ${prevSchema}`);

    // 3. The previous release cannot read the migrated data, and says so without touching it.
    const refused = run(PREV_BIN, ["serve", "--listen", "127.0.0.1:0"], dataDir);
    assert.notEqual(refused.status, 0, refused.out);
    assert.match(refused.out, new RegExp(`schema version ${newSchema} is newer`));

    // 4. Back out with the runbook's command, run by this build's binary.
    assert.deepEqual(rollbackArgs, ["migrate", "rollback", "--to", String(prevSchema)], "the runbook's rollback goes back to the previous release's schema");
    const rolled = run(BIN, rollbackArgs, dataDir);
    assert.equal(rolled.status, 0, rolled.out);
    assert.match(rolled.out, new RegExp(`rolled back from schema version ${newSchema} to ${prevSchema} in place`));

    // 5. The previous release serves every message, the one written after the upgrade included, and writes again.
    server = await startServer({}, { reuse: dir, bin: PREV_BIN });
    agent = await server.login(AGENT);
    assert.deepEqual(await texts(server, agent.accessToken, conv), ["old-1", "old-2", "new-1"]);
    await send(server, agent.accessToken, conv, "old-3");
    assert.equal(await server.term(), 0);
    assert.equal(schemaOf(PREV_BIN, dataDir), prevSchema);

    // 6. Upgrading again migrates forward with nothing lost.
    server = await startServer({}, { reuse: dir });
    agent = await server.login(AGENT);
    assert.deepEqual(await texts(server, agent.accessToken, conv), ["old-1", "old-2", "new-1", "old-3"]);
    assert.equal(await server.term(), 0);
    assert.equal(schemaOf(BIN, dataDir), newSchema);
  } finally {
    await server.stop();
  }
});

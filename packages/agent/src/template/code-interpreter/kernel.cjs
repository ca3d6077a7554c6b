// Wrenn's JavaScript kernel: one Node process per code context (node_context.py runs it).
// Only Node's built-ins (Debian's nodejs 18). Cells arrive as JSON lines on fd IN
// ({id, code, env}); E2B's output objects leave as JSON lines on fd OUT, each tagged with its
// cell so the service can drop what an abandoned cell prints later.
//
// Node's own REPL evaluates the cells: it keeps `const`/`let` across cells, runs top-level
// `await` and stops a busy loop on SIGINT (breakEvalOnSigint), none of which plain `vm` does.
"use strict";

const fs = require("node:fs");
const readline = require("node:readline");
const repl = require("node:repl");
const util = require("node:util");
const { AsyncLocalStorage } = require("node:async_hooks");
const { PassThrough, Writable } = require("node:stream");

const [IN, OUT] = process.argv.slice(2).map(Number);
if (!Number.isInteger(IN) || !Number.isInteger(OUT)) {
  process.stderr.write("usage: node kernel.cjs <in-fd> <out-fd>\n");
  process.exit(2);
}

const cellOf = new AsyncLocalStorage(); // the cell whose code (or callback) is running
let running = null; // {id, finish} of the cell being evaluated
let executions = 0;
const now = () => new Date().toISOString();

function send(message) {
  const data = Buffer.from(`${JSON.stringify(message)}\n`);
  for (let done = 0; done < data.length; ) done += fs.writeSync(OUT, data, done);
}

// Output of the cell's code (console.*, process.stdout.write) goes out tagged with its cell;
// the kernel's own fds 1 and 2 are left to subprocesses (the service reads them as well).
for (const name of ["stdout", "stderr"]) {
  process[name].write = (chunk, encoding, callback) => {
    const cb = typeof encoding === "function" ? encoding : callback;
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    send({ cell: cellOf.getStore() ?? null, type: name, text, timestamp: now() });
    if (typeof cb === "function") process.nextTick(cb);
    return true;
  };
}

const server = repl.start({
  input: new PassThrough(),
  output: new Writable({ write: (_chunk, _encoding, cb) => cb() }),
  prompt: "",
  terminal: false,
  useGlobal: false,
  ignoreUndefined: true,
  breakEvalOnSigint: true,
  preview: false,
});
server.context.console = console; // the REPL's own console writes to its (discarded) output
server.removeAllListeners("SIGINT"); // its Ctrl+C handling would close the REPL
// The REPL reports a cell's exception to its domain, not to eval's callback.
server._domain?.removeAllListeners("error");
server._domain?.on("error", (err) => settle(cellOf.getStore(), err));

// An interrupt while the cell awaits: the REPL stops only busy code, so the cell is given up
// (what it prints or throws later is dropped). Off while the REPL runs code: a SIGINT
// listener then turns its watchdog off and SIGINT would end the kernel.
function onSigint() {
  if (running) {
    const err = new Error("Script execution was interrupted by `SIGINT`");
    err.code = "ERR_SCRIPT_EXECUTION_INTERRUPTED";
    err.stack = `Error: ${err.message}`;
    settle(running.id, err);
  }
}
process.on("SIGINT", onSigint);

function settle(id, err, value) {
  if (running && running.id === id) running.finish(err, value);
  else if (err !== undefined)
    send({ cell: id ?? null, type: "stderr", text: `Uncaught ${stackOf(err)}\n` });
}

function isError(value) {
  return (
    util.types.isNativeError(value) || (typeof value?.stack === "string" && "message" in value)
  );
}

// The stack down to the cell's own frames (the REPL's and this file's are noise).
function stackOf(err) {
  if (!isError(err)) return util.inspect(err);
  const lines = String(err.stack).split("\n");
  let last = lines.findIndex((line) => /^\s+at /.test(line)) - 1;
  if (last < 0) return lines.join("\n");
  lines.forEach((line, i) => {
    if (/^\s+at /.test(line) && line.includes("<cell ")) last = i;
  });
  return lines
    .slice(0, last + 1)
    .join("\n")
    .trimEnd();
}

function errorOf(err) {
  const error = err instanceof repl.Recoverable ? err.err : err; // incomplete input
  if (!isError(error)) {
    return {
      type: "error",
      name: "Error",
      value: util.inspect(error),
      traceback: `Uncaught ${util.inspect(error)}`,
    };
  }
  return {
    type: "error",
    name: String(error.name),
    value: String(error.message),
    traceback: stackOf(error),
  };
}

function isPlain(value) {
  const proto = Object.getPrototypeOf(value);
  return proto === null || proto.constructor?.name === "Object";
}

function resultOf(value) {
  const result = {
    type: "result",
    is_main_result: true,
    // A string reads as its value, as on the Python side.
    text: typeof value === "string" ? value : util.inspect(value),
  };
  if (value !== null && typeof value === "object" && (Array.isArray(value) || isPlain(value))) {
    try {
      result.json = JSON.parse(JSON.stringify(value));
    } catch {} // not JSON (a BigInt, a cycle): text only
  }
  return result;
}

// env_vars hold for one cell: set before it, restored after.
function setEnv(env) {
  const saved = {};
  for (const [key, value] of Object.entries(env ?? {})) {
    saved[key] = process.env[key];
    process.env[key] = value;
  }
  return () => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
}

function execute({ id, code, env }) {
  executions += 1;
  send({ cell: id, type: "number_of_executions", execution_count: executions });
  const restoreEnv = setEnv(env);
  return new Promise((resolve) => {
    running = {
      id,
      finish(err, value) {
        running = null;
        restoreEnv();
        if (err !== undefined && err !== null) send({ cell: id, ...errorOf(err) });
        else if (value !== undefined) send({ cell: id, ...resultOf(value) });
        send({ cell: id, type: "done" });
        resolve();
      },
    };
    process.removeListener("SIGINT", onSigint);
    try {
      cellOf.run(id, () =>
        server.eval(code, server.context, `<cell ${executions}>`, (err, value) =>
          settle(id, err, value),
        ),
      );
    } finally {
      process.on("SIGINT", onSigint);
    }
  });
}

// One cell at a time, in order; the service closing IN ends the kernel.
const cells = [];
let busy = false;
async function drain() {
  if (busy) return;
  busy = true;
  while (cells.length) await execute(cells.shift());
  busy = false;
}
readline
  .createInterface({
    input: fs.createReadStream(null, { fd: IN }),
    crlfDelay: Number.POSITIVE_INFINITY,
  })
  .on("line", (line) => {
    cells.push(JSON.parse(line));
    drain();
  })
  .on("close", () => process.exit(0));

send({ cell: null, type: "ready" });

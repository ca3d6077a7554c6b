#!/usr/bin/env node
// libuv sizes its thread pool on first use, and loading an ES module already uses it, so the size
// is set here, in CommonJS, before anything else runs: `wrenn server start` serves every fs call
// (disks, cgroups, state records, file transfers) from that pool, and its default 4 threads let a
// few slow cgroup writes during a burst of creates hold up all the others.
process.env.UV_THREADPOOL_SIZE ||= "16";
// undici, the SDK's HTTP client, compiles its HTTP parser (WebAssembly) in each process at its
// first request, and V8's optimising compiler spent a fifth of a short command's time on it
// (`wrenn exec <id> -- true`: 680 -> 540 ms here). Liftoff, V8's baseline compiler, has it ready
// at once; set before anything is compiled. The server (`wrenn server start`) makes no such requests.
require("node:v8").setFlagsFromString("--liftoff-only");
import("./run.js");

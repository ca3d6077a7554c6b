#!/usr/bin/env node
// libuv sizes its thread pool on first use, and loading an ES module already uses it, so the size
// is set here, in CommonJS, before anything else runs: the server (with its embedded agent) serves
// every fs call from that pool, and its default 4 threads let a few slow cgroup writes during a
// burst of creates hold up all the others.
process.env.UV_THREADPOOL_SIZE ||= "16";
import("../dist/main.js");

#!/usr/bin/env node
// libuv sizes its thread pool on first use, and loading an ES module already uses it, so the size
// is set here, in CommonJS, before anything else runs: `wrenn server start` serves every fs call
// (disks, cgroups, state records, file transfers) from that pool, and its default 4 threads let a
// few slow cgroup writes during a burst of creates hold up all the others.
process.env.UV_THREADPOOL_SIZE ||= "16";
// Each command is a new process: the SDK's Node HTTP client, ready at once, rather than undici,
// which takes 150-265 ms to load and compile its parser (`wrenn exec <id> -- true`: 550-660 ->
// 390 ms here). A long-lived process is better served by undici, the SDK's default.
process.env.WRENN_HTTP_CLIENT ||= "node";
import("./run.js");

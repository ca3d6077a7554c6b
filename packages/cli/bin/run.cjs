#!/usr/bin/env node
// libuv sizes its thread pool on first use, and loading an ES module already uses it, so the size
// is set here, in CommonJS, before anything else runs: `wrenn server start` serves every fs call
// (disks, cgroups, state records, file transfers) from that pool, and its default 4 threads let a
// few slow cgroup writes during a burst of creates hold up all the others.
process.env.UV_THREADPOOL_SIZE ||= "16";
// One ES module holds oclif, the SDK and every command (scripts/bundle.mjs).
import("../dist/bundle/wrenn.js").then(({ run }) => run());

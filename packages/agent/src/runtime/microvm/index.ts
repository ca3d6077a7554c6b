export { microVmUnavailable } from "./guest-image.js";
export { MicroVmRuntime } from "./microvm-runtime.js";
export type { MicroVmRuntimeOptions } from "./parts.js";
export type { Accel } from "./qemu.js";
export { detectAccel, qemuVersion } from "./qemu.js";

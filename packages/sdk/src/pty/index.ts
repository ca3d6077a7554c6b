export type { PtyCreateOpts, PtySize } from "./pty.js";
export { Pty, PtyHandle } from "./pty.js";

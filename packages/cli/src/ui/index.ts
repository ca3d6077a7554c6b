// The components (import these only where Ink may load); commands use ./interactive.js.
export type { ConfirmProps } from "./confirm.js";
export { Confirm } from "./confirm.js";
export type { ProgressBarProps, ProgressStats } from "./progress-bar.js";
export { ProgressBar, progressStats } from "./progress-bar.js";
export type { TextPromptProps } from "./text-prompt.js";
export { TextPrompt } from "./text-prompt.js";

export type { CreateCodeContextOpts, RunCodeOpts } from "./code-interpreter.js";
export { CODE_INTERPRETER_PORT, CodeInterpreter } from "./code-interpreter.js";
export type { CodeContext, ExecutionError, OutputMessage } from "./execution.js";
export { Execution, Result } from "./execution.js";

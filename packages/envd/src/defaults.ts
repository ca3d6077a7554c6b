/**
 * Defaults for later processes, set by the environment at start and by POST /init after a
 * sandbox is created or resumed.
 */
export const defaults: {
  user: string;
  workdir: string | undefined;
  envVars: Record<string, string>;
} = {
  user: process.env.WRENN_ENVD_USER || "user",
  workdir: undefined,
  envVars: {},
};

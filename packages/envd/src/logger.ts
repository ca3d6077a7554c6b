import pino from "pino";

export const logger = pino({ name: "envd", level: process.env.WRENN_LOG_LEVEL ?? "info" });

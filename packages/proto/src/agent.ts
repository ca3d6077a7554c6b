export * from "./gen/wrenn/agent/v1/agent_pb.js";

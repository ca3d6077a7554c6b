// The cluster helper lives with the server's tests (its fault suite restarts it); shared here.
export {
  postgresBinDir,
  startThrowawayPostgres,
  type ThrowawayPostgres,
} from "../../packages/server/test/helpers/postgres-cluster.js";

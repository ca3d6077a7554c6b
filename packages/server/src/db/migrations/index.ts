import type { Migration, MigrationProvider } from "kysely";
import { initial } from "./0001-initial.js";
import { fleet } from "./0002-fleet.js";
import { hardening } from "./0003-hardening.js";
import { runtimeDetails } from "./0004-runtime-details.js";
import { egress } from "./0005-egress.js";
import { publicTraffic } from "./0006-public-traffic.js";
import { templates } from "./0007-templates.js";
import { templateSize } from "./0008-template-size.js";
import { layerCache } from "./0009-layer-cache.js";

// One migration set for both dialects: only types both read back the same (text, integer).
// Each migration lives in its own file; add new ones here under the next number.

/** Every migration, in order; the keys sort in the order they must run. */
export const migrations: Record<string, Migration> = {
  "0001_initial": initial,
  "0002_fleet": fleet,
  "0003_hardening": hardening,
  "0004_runtime_details": runtimeDetails,
  "0005_egress": egress,
  "0006_public_traffic": publicTraffic,
  "0007_templates": templates,
  "0008_template_size": templateSize,
  "0009_layer_cache": layerCache,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};

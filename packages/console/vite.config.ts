import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev -w @wrenn/console` serves the console on :5173 against a server on :3000.
const api = process.env.WRENN_API_URL ?? "http://127.0.0.1:3000";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 1024 },
  server: { proxy: { "/v1": { target: api, ws: true }, "/health": api } },
});

import { defineConfig } from "vite";

// A static site: relative asset paths, so `dist/` can be served from any folder or URL,
// with the network's config.json beside index.html (written by `python -m neurotoken.web`).
export default defineConfig({
  base: "./",
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", sourcemap: false },
});

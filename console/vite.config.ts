import { gzipSync } from "node:zlib";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defineConfig, type Plugin } from "vite";
import react from "@vitejs/plugin-react";

// The wablast binary embeds dist/ and answers a browser that accepts gzip
// with the `.gz` sibling of a file, so nothing is compressed per request.
function precompress(): Plugin {
  let outDir = "dist";
  return {
    name: "wablast-precompress",
    apply: "build",
    configResolved(config) {
      outDir = config.build.outDir;
    },
    closeBundle() {
      const walk = (dir: string) => {
        for (const name of readdirSync(dir)) {
          const path = join(dir, name);
          if (statSync(path).isDirectory()) walk(path);
          else if (/\.(js|css|html|svg|json|txt|webmanifest)$/.test(name)) {
            writeFileSync(`${path}.gz`, gzipSync(readFileSync(path), { level: 9 }));
          }
        }
      };
      walk(outDir);
    },
  };
}

export default defineConfig({
  plugins: [react(), precompress()],
  build: {
    // Hashed file names under assets/: the binary serves them as immutable.
    assetsDir: "assets",
    target: "es2020",
    sourcemap: false,
  },
  server: {
    // `npm run dev` against a `wablast all` on the default address.
    proxy: {
      "/api": "http://127.0.0.1:8080",
    },
  },
});

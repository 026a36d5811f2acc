import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Capture/restore tests start real processes and compile C: give them room.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: run files in parallel, but real-process tests serialize themselves.
    pool: "forks",
  },
});

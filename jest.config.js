/** Jest 30 + ts-jest in native ESM mode. Run through `npm test` (sets --experimental-vm-modules). */
export default {
  testEnvironment: "node",
  roots: ["<rootDir>"],
  testPathIgnorePatterns: ["/node_modules/", "/gen/", "/examples/"],
  modulePathIgnorePatterns: ["<rootDir>/.podium/"],
  testMatch: ["**/*.test.ts"],
  extensionsToTreatAsEsm: [".ts"],
  moduleNameMapper: {
    "^(\\.{1,2}/.*)\\.js$": "$1",
    // packages/testing imports the server as its package does once installed (tsconfig.json `paths` for tsc).
    "^@podium-agents/podium/dev$": "<rootDir>/services/dev/index.ts",
  },
  transform: {
    "^.+\\.ts$": ["ts-jest", { useESM: true, tsconfig: "tsconfig.json", isolatedModules: true, diagnostics: false }],
  },
  testTimeout: 30000,
  maxWorkers: 2,
};

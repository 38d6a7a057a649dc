#!/usr/bin/env node
// The `podium` command. Podium is written in TypeScript and runs from source through tsx.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../services/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));

/** The platform version reported by services (kept in step with package.json). */
export const PODIUM_VERSION = "0.1.0";

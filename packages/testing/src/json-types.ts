/** JSON values as messages, events and state carry them (the same shapes as @podium-agents/sdk's). */
export type Json = null | boolean | number | string | Json[] | JsonObject;
export type JsonObject = { [key: string]: Json };

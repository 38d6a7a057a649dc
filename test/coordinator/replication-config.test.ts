/**
 * Replication settings from flags and environment (services/coordinator/replication-config.ts), as
 * read by `podium coordinator` and `podium dev`: on only with a bucket, flags before environment,
 * S3 fallbacks, credentials and the Litestream child's environment, sync interval validation.
 */
import { describe, it, expect } from "@jest/globals";
import { REPLICATION_FLAGS, replicationFromFlags, type ReplicationFlagValues } from "../../services/coordinator/replication-config.js";
import type { CoordinatorReplicationOptions } from "../../services/coordinator/create-coordinator.js";
import { compileS3Settings } from "../../services/replication/replication-options.js";

/** replicationFromFlags, asserting that replication is on. */
function on(values: ReplicationFlagValues, env: NodeJS.ProcessEnv): CoordinatorReplicationOptions {
  const options = replicationFromFlags(values, env);
  expect(options).toBeDefined();
  return options as CoordinatorReplicationOptions;
}

const FULL_ENV: NodeJS.ProcessEnv = {
  PODIUM_REPLICATION_BUCKET: "env-bucket",
  PODIUM_REPLICATION_PREFIX: "env-prefix",
  PODIUM_REPLICATION_ENDPOINT: "http://env-endpoint:9000",
  PODIUM_REPLICATION_REGION: "env-region",
  PODIUM_REPLICATION_SYNC_INTERVAL_MS: "2500",
};

describe("replicationFromFlags", () => {
  it("declares every flag as a string option for parseArgs", () => {
    expect(Object.keys(REPLICATION_FLAGS).sort()).toEqual(["replicate-bucket", "replicate-endpoint", "replicate-prefix", "replicate-region", "replicate-sync-interval-ms"].sort());
    for (const flag of Object.values(REPLICATION_FLAGS)) expect(flag.type).toBe("string");
  });

  it("is off (undefined) without a bucket, whatever else is set", () => {
    expect(replicationFromFlags({}, {})).toBeUndefined();
    const { PODIUM_REPLICATION_BUCKET: _bucket, ...withoutBucket } = FULL_ENV;
    expect(_bucket).toBe("env-bucket");
    expect(
      replicationFromFlags(
        { "replicate-prefix": "p", "replicate-endpoint": "http://x", "replicate-region": "r", "replicate-sync-interval-ms": "100" },
        { ...withoutBucket, AWS_ACCESS_KEY_ID: "id", AWS_SECRET_ACCESS_KEY: "secret", PODIUM_S3_ENDPOINT: "http://s3" },
      ),
    ).toBeUndefined();
    expect(replicationFromFlags({}, { PODIUM_REPLICATION_BUCKET: "" })).toBeUndefined();
  });

  it("takes the bucket from the flag or from PODIUM_REPLICATION_BUCKET; minimal settings have no optional fields", () => {
    expect(on({ "replicate-bucket": "flag-bucket" }, {})).toEqual({ s3: { bucket: "flag-bucket", prefix: "", childEnv: {} } });
    expect(on({}, { PODIUM_REPLICATION_BUCKET: "env-bucket" })).toEqual({ s3: { bucket: "env-bucket", prefix: "", childEnv: {} } });
  });

  it("reads every setting from the environment", () => {
    expect(on({}, FULL_ENV)).toEqual({
      s3: { bucket: "env-bucket", prefix: "env-prefix/", endpoint: "http://env-endpoint:9000", region: "env-region", childEnv: {} },
      syncIntervalMs: 2500,
    });
  });

  it("flags win over the environment, one by one", () => {
    const flags: ReplicationFlagValues = {
      "replicate-bucket": "flag-bucket",
      "replicate-prefix": "flag-prefix/",
      "replicate-endpoint": "http://flag-endpoint:9000",
      "replicate-region": "flag-region",
      "replicate-sync-interval-ms": "750",
    };
    const env: NodeJS.ProcessEnv = { ...FULL_ENV, PODIUM_S3_ENDPOINT: "http://s3-endpoint", PODIUM_S3_REGION: "s3-region", AWS_REGION: "aws-region" };
    expect(on(flags, env)).toEqual({
      s3: { bucket: "flag-bucket", prefix: "flag-prefix/", endpoint: "http://flag-endpoint:9000", region: "flag-region", childEnv: {} },
      syncIntervalMs: 750,
    });
    // Each flag alone overrides only its own setting.
    expect(on({ "replicate-bucket": "b2" }, FULL_ENV).s3.bucket).toBe("b2");
    expect(on({ "replicate-prefix": "p2" }, FULL_ENV).s3.prefix).toBe("p2/");
    expect(on({ "replicate-endpoint": "http://e2" }, FULL_ENV).s3.endpoint).toBe("http://e2");
    expect(on({ "replicate-region": "r2" }, FULL_ENV).s3.region).toBe("r2");
    expect(on({ "replicate-sync-interval-ms": "42" }, FULL_ENV).syncIntervalMs).toBe(42);
    expect(on({ "replicate-region": "r2" }, FULL_ENV)).toMatchObject({ s3: { bucket: "env-bucket", prefix: "env-prefix/", endpoint: "http://env-endpoint:9000" }, syncIntervalMs: 2500 });
  });

  it("gives the prefix a trailing slash (once), and leaves an empty prefix empty", () => {
    const bucket = { "replicate-bucket": "b" };
    expect(on({ ...bucket, "replicate-prefix": "prod" }, {}).s3.prefix).toBe("prod/");
    expect(on({ ...bucket, "replicate-prefix": "prod/" }, {}).s3.prefix).toBe("prod/");
    expect(on({ ...bucket, "replicate-prefix": "team/prod" }, {}).s3.prefix).toBe("team/prod/");
    expect(on({ ...bucket, "replicate-prefix": "" }, {}).s3.prefix).toBe("");
    expect(on(bucket, { PODIUM_REPLICATION_PREFIX: "from-env" }).s3.prefix).toBe("from-env/");
    // Empty counts as unset (compose files write `VAR=`): the next source applies.
    expect(on({ ...bucket, "replicate-prefix": "" }, { PODIUM_REPLICATION_PREFIX: "from-env" }).s3.prefix).toBe("from-env/");
    expect(on(bucket, { PODIUM_REPLICATION_ENDPOINT: "", PODIUM_S3_ENDPOINT: "http://s3:9000" }).s3.endpoint).toBe("http://s3:9000");
    expect(on(bucket, { PODIUM_REPLICATION_SYNC_INTERVAL_MS: "" })).not.toHaveProperty("syncIntervalMs");
  });

  it("endpoint falls back to PODIUM_S3_ENDPOINT", () => {
    const env = { PODIUM_REPLICATION_BUCKET: "b", PODIUM_S3_ENDPOINT: "http://shared-s3:9000" };
    expect(on({}, env).s3.endpoint).toBe("http://shared-s3:9000");
    expect(on({}, { ...env, PODIUM_REPLICATION_ENDPOINT: "http://repl:9000" }).s3.endpoint).toBe("http://repl:9000");
    expect(on({ "replicate-endpoint": "http://flag:9000" }, env).s3.endpoint).toBe("http://flag:9000");
    expect("endpoint" in on({}, { PODIUM_REPLICATION_BUCKET: "b" }).s3).toBe(false);
  });

  it("region falls back to PODIUM_S3_REGION, then AWS_REGION", () => {
    const bucket = { PODIUM_REPLICATION_BUCKET: "b" };
    expect(on({}, { ...bucket, AWS_REGION: "aws-region" }).s3.region).toBe("aws-region");
    expect(on({}, { ...bucket, AWS_REGION: "aws-region", PODIUM_S3_REGION: "s3-region" }).s3.region).toBe("s3-region");
    expect(on({}, { ...bucket, AWS_REGION: "aws-region", PODIUM_S3_REGION: "s3-region", PODIUM_REPLICATION_REGION: "repl-region" }).s3.region).toBe("repl-region");
    expect(on({ "replicate-region": "flag-region" }, { ...bucket, AWS_REGION: "aws-region", PODIUM_S3_REGION: "s3-region", PODIUM_REPLICATION_REGION: "r" }).s3.region).toBe("flag-region");
    expect("region" in on({}, bucket).s3).toBe(false);
  });

  it("AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY become s3.credentials, only when both are set", () => {
    const bucket = { PODIUM_REPLICATION_BUCKET: "b" };
    expect(on({}, { ...bucket, AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "s3cr3t" }).s3.credentials).toEqual({
      accessKeyId: "AKIDEXAMPLE",
      secretAccessKey: "s3cr3t",
    });
    expect("credentials" in on({}, { ...bucket, AWS_ACCESS_KEY_ID: "AKIDEXAMPLE" }).s3).toBe(false);
    expect("credentials" in on({}, { ...bucket, AWS_SECRET_ACCESS_KEY: "s3cr3t" }).s3).toBe(false);
    expect("credentials" in on({}, { ...bucket, AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "" }).s3).toBe(false);
    expect("credentials" in on({}, bucket).s3).toBe(false);
  });

  it("childEnv holds only the AWS credential-chain variables and HOME, and never the keys themselves", () => {
    const env: NodeJS.ProcessEnv = {
      PODIUM_REPLICATION_BUCKET: "b",
      AWS_SESSION_TOKEN: "token",
      AWS_PROFILE: "profile",
      AWS_SHARED_CREDENTIALS_FILE: "/creds",
      AWS_CONFIG_FILE: "/config",
      AWS_WEB_IDENTITY_TOKEN_FILE: "/web-identity",
      AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/podium",
      HOME: "/home/podium",
      AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
      AWS_SECRET_ACCESS_KEY: "s3cr3t",
      AWS_REGION: "eu-west-1",
      PATH: "/usr/bin",
      USER: "podium",
      PODIUM_CLUSTER_SECRET: "do-not-leak",
      SOME_OTHER: "x",
    };
    const options = on({}, env);
    expect(options.s3.childEnv).toEqual({
      AWS_SESSION_TOKEN: "token",
      AWS_PROFILE: "profile",
      AWS_SHARED_CREDENTIALS_FILE: "/creds",
      AWS_CONFIG_FILE: "/config",
      AWS_WEB_IDENTITY_TOKEN_FILE: "/web-identity",
      AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/podium",
      HOME: "/home/podium",
    });
    expect(options.s3.credentials).toEqual({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "s3cr3t" });
    // Empty values are not passed on.
    expect(on({}, { PODIUM_REPLICATION_BUCKET: "b", AWS_PROFILE: "", HOME: "/h" }).s3.childEnv).toEqual({ HOME: "/h" });
  });

  it("accepts positive integer sync intervals", () => {
    expect(on({ "replicate-bucket": "b", "replicate-sync-interval-ms": "1" }, {}).syncIntervalMs).toBe(1);
    expect(on({ "replicate-bucket": "b", "replicate-sync-interval-ms": "60000" }, {}).syncIntervalMs).toBe(60_000);
    expect("syncIntervalMs" in on({ "replicate-bucket": "b" }, {})).toBe(false);
  });

  it.each(["0", "-5", "abc", "1.5", "NaN", "Infinity", "9007199254740993", "1e3", "0x10"])("rejects sync interval %j with a clear message naming its source", (bad) => {
    expect(() => replicationFromFlags({ "replicate-bucket": "b", "replicate-sync-interval-ms": bad }, {})).toThrow(
      `--replicate-sync-interval-ms must be a positive integer (milliseconds), got ${JSON.stringify(bad)}`,
    );
    expect(() => replicationFromFlags({}, { PODIUM_REPLICATION_BUCKET: "b", PODIUM_REPLICATION_SYNC_INTERVAL_MS: bad })).toThrow(
      `PODIUM_REPLICATION_SYNC_INTERVAL_MS must be a positive integer (milliseconds), got ${JSON.stringify(bad)}`,
    );
  });

  it("does not validate the sync interval when replication is off", () => {
    expect(replicationFromFlags({ "replicate-sync-interval-ms": "abc" }, {})).toBeUndefined();
  });

  it("produces settings the replication layer accepts", () => {
    const options = on(
      { "replicate-prefix": "prod" },
      { PODIUM_REPLICATION_BUCKET: "podium-agents", PODIUM_S3_ENDPOINT: "http://127.0.0.1:9000", AWS_REGION: "eu-west-1", AWS_ACCESS_KEY_ID: "id", AWS_SECRET_ACCESS_KEY: "secret", HOME: "/h" },
    );
    expect(compileS3Settings(options.s3)).toEqual({
      bucket: "podium-agents",
      prefix: "prod/",
      endpoint: "http://127.0.0.1:9000",
      region: "eu-west-1",
      forcePathStyle: true,
      credentials: { accessKeyId: "id", secretAccessKey: "secret" },
      childEnv: { HOME: "/h" },
    });
  });
});

// The Kafka bus's configuration schema. Its behaviour over the wire (the EventBus contract,
// CloudEvents as ce_* Kafka headers, rebalances) is tested in test/contract/bus.kafka.contract.test.ts,
// against the Kafka test broker, which code under services/ never imports.

import { describe, expect, it } from "vitest";
import { KumoError } from "../model/index.ts";
import { loadKafkaConfig } from "./kafka.ts";

describe("loadKafkaConfig", () => {
  it("applies defaults and returns a frozen config", () => {
    const config = loadKafkaConfig({ KUMO_KAFKA_BROKERS: "kafka-0.kafka:9092, kafka-1.kafka:9092" });
    expect(config).toEqual({ brokers: ["kafka-0.kafka:9092", "kafka-1.kafka:9092"], clientId: "kumo", ssl: false, idempotent: true, partitions: 8, sessionTimeoutMs: 30_000 });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.brokers)).toBe(true);
  });

  it("reads every setting", () => {
    const config = loadKafkaConfig({
      KUMO_KAFKA_BROKERS: "10.0.0.1:9093",
      KUMO_KAFKA_CLIENT_ID: "kumo-dispatcher",
      KUMO_KAFKA_SSL: "true",
      KUMO_KAFKA_SASL_MECHANISM: "SCRAM-SHA-512",
      KUMO_KAFKA_SASL_USERNAME: "kumo",
      KUMO_KAFKA_SASL_PASSWORD: "s3cret",
      KUMO_KAFKA_IDEMPOTENT: "false",
      KUMO_KAFKA_PARTITIONS: "16",
      KUMO_KAFKA_SESSION_TIMEOUT_MS: "10000",
    });
    expect(config).toEqual({
      brokers: ["10.0.0.1:9093"],
      clientId: "kumo-dispatcher",
      ssl: true,
      sasl: { mechanism: "scram-sha-512", username: "kumo", password: "s3cret" },
      idempotent: false,
      partitions: 16,
      sessionTimeoutMs: 10_000,
    });
  });

  it("reports every bad key at once", () => {
    let error: unknown;
    try {
      loadKafkaConfig({
        KUMO_KAFKA_BROKERS: "kafka:9092,no-port",
        KUMO_KAFKA_SSL: "yes",
        KUMO_KAFKA_PARTITIONS: "0",
        KUMO_KAFKA_SESSION_TIMEOUT_MS: "100",
        KUMO_KAFKA_SASL_MECHANISM: "gssapi",
        KUMO_KAFKA_IDEMPOTENT: "maybe",
        KUMO_KAFKA_BROKER: "typo:9092",
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(KumoError);
    const kumo = error as KumoError;
    expect(kumo.code).toBe("KUMO_E_INVALID_CONFIG");
    expect(kumo.details.map((d) => d.field).sort()).toEqual(
      [
        "KUMO_KAFKA_BROKER",
        "KUMO_KAFKA_BROKERS",
        "KUMO_KAFKA_IDEMPOTENT",
        "KUMO_KAFKA_PARTITIONS",
        "KUMO_KAFKA_SASL_MECHANISM",
        "KUMO_KAFKA_SASL_PASSWORD",
        "KUMO_KAFKA_SASL_USERNAME",
        "KUMO_KAFKA_SESSION_TIMEOUT_MS",
        "KUMO_KAFKA_SSL",
      ].sort(),
    );
    expect(kumo.message).toMatch(/and 8 more problems/);
  });

  it("requires the brokers, and a mechanism for SASL credentials", () => {
    expect(() => loadKafkaConfig({})).toThrow(/KUMO_KAFKA_BROKERS is not set/);
    expect(() => loadKafkaConfig({ KUMO_KAFKA_BROKERS: "k:9092", KUMO_KAFKA_SASL_USERNAME: "u", KUMO_KAFKA_SASL_PASSWORD: "p" })).toThrow(
      /KUMO_KAFKA_SASL_MECHANISM is not/,
    );
  });
});

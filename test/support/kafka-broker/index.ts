// A Kafka-protocol test broker (single node, in memory) that kafkajs connects to over TCP.
// Test-only: nothing under services/, runtime/ or event-providers/ may import it.
export { startTestKafkaBroker, type TestKafkaBroker, type TestKafkaBrokerOptions } from "./broker.ts";

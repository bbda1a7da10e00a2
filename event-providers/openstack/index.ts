// The OpenStack notification provider: RabbitMQ (oslo.messaging) notifications in, CloudEvents
// out. This file is the module's whole public surface.
export { OpenStackProvider, type OpenStackProviderOptions, type OpenStackProviderStats, type OpenStackLog } from "./provider.ts";
export { loadOpenStackConfig, redactedUrl, OPENSTACK_CONFIG_KEYS, type OpenStackConfig } from "./config.ts";
export {
  decodeNotification,
  rfc3339,
  DEFAULT_MAX_PAYLOAD_BYTES,
  PUBLISHER_SERVICES,
  EXCHANGE_SERVICES,
  type DecodeResult,
  type DecodeOptions,
  type NotificationProperties,
} from "./decode.ts";

/**
 * The configuration schema: every key with its default and a description, in one place.
 * Sections live in ./sections/ (one file per module that owns them). Objects are strict, so
 * unknown keys are rejected; nested sections use .prefault({}) so their own defaults apply.
 * `relay365 config defaults` prints the parsed empty config; docs/configuration.md is generated
 * from this schema.
 */
import { z } from 'zod';
import { coreSection } from './sections/core.js';
import { relaySection } from './sections/relay.js';
import { webSection } from './sections/web.js';

export const configSchema = z.strictObject({
  ...coreSection,
  ...relaySection,
  ...webSection,
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

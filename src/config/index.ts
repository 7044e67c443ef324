export { configSchema, type Config, type ConfigInput } from './schema.js';
export { loadConfigFile, parseConfigText, defaultConfig, type LoadedConfig } from './load.js';

export { createLogger } from './logger.js';
export {
  ALL_ROLES,
  MODULE_DEPS,
  type ModuleName,
  moduleOrder,
  startTrainwatch,
  type Trainwatch,
} from './modules.js';

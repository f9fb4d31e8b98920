/** Reported in `/metrics` build info, the startup log and the usage text. */
export const VERSION = "0.1.0";

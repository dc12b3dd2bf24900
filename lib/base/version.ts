/** om's version, printed by `om --version` and carried in the channel handshake later. */
export const VERSION = "0.1.0";

// Types for scripts/runtime.mjs (read by the TypeScript tests and the bench).
export declare const PINNED_NODE: string;
export declare const NODE_FLAGS: string[];
export declare function pinnedNodeOrFail(): string;
export declare function pinnedNodeVersion(): string;

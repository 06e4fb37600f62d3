// The requests a pfedprompt ServerApp makes of a node (flower/PROTOCOL.md), apart from
// ClientNode so the browser node's bundle can check them without Node's data loading.
export type NodeAsk = 'describe' | 'fit' | 'finish' | 'evaluate';
export const NODE_ASKS: readonly NodeAsk[] = ['describe', 'fit', 'finish', 'evaluate'];

// A labelled image dataset as the federated protocol reads it: class names
// and the train / val / test splits, each a list of images with labels.

export interface ImageItem {
  /** Absolute path of the image file. */
  readonly path: string;
  /** Path as the split file gives it (relative to the dataset's image folder), used in keys and messages. */
  readonly relativePath: string;
  /** Label in 0 … classnames.length − 1. */
  readonly label: number;
}

export interface Dataset {
  /** E.g. "Caltech101", or the folder name for a plain image folder. */
  readonly name: string;
  /** Dataset root folder. */
  readonly root: string;
  /** Class names by label, as text prompts use them (underscores already replaced where the source does so). */
  readonly classnames: readonly string[];
  readonly train: readonly ImageItem[];
  readonly val: readonly ImageItem[];
  readonly test: readonly ImageItem[];
  /** A hash of what defines the splits (split file contents or folder listing), so a partition can tell it was made from this dataset. */
  readonly fingerprint: string;
}

export type SplitName = 'train' | 'val' | 'test';

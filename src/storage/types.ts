/** One stored image, as listed by `GET /images` and the MQTT `list` action. */
export interface ImageInfo {
  filename: string;
  size: number;
  /** ISO 8601: when the capture was taken (to the second, from the name, for images found at start). */
  created: string;
  /** ISO 8601: last modification of the file. */
  modified: string;
  /** Delivery channels that have confirmed this image (`mqtt`, `http`); empty = never delivered. */
  delivered: string[];
}

export interface StorageUsage {
  used_bytes: number;
  limit_bytes: number;
  available_bytes: number;
  image_count: number;
  /** Real free space on the file system holding the capture dir. */
  disk_free_bytes: number;
}

export interface StoreEvents {
  added: (image: ImageInfo) => void;
  deleted: (image: ImageInfo) => void;
  evicted: (image: ImageInfo, reason: 'storage_limit' | 'disk_space') => void;
}

export interface ImageStore {
  /** Creates the dirs, removes leftover temp files, scans the folder once into the in-memory index. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A fresh path in the store's temp dir (same file system, so commit is a rename), no extension. */
  tempBase(): string;
  /**
   * Makes room for an image of `bytes`: evicts the oldest images (delivered ones first) until it
   * fits the limit and the free-disk margin. Throws NodeError storage_full when it cannot.
   */
  reserve(bytes: number): Promise<ImageInfo[]>;
  /**
   * Re-reads the free disk space and says whether `bytes` more would still leave the free-disk
   * margin: after a failed capture, it tells a full disk from a camera fault.
   */
  hasDiskRoom(bytes: number): Promise<boolean>;
  /**
   * Moves a complete file (one in the temp dir) into place under a new unique name in the local time
   * of `capturedAt`: `capture_YYYYMMDD_HHMMSS.dng`, then `_001`, `_002`… for further
   * captures in that second (see names.ts: byte order of the names is capture order).
   */
  commit(tempPath: string, capturedAt: Date): Promise<ImageInfo>;
  /** Newest first. */
  list(): ImageInfo[];
  /** Throws invalid_filename for a name the node could not have produced, not_found if absent. */
  get(filename: string): ImageInfo;
  /** Absolute path of an image name: throws invalid_filename like get, but does not look it up. */
  pathOf(filename: string): string;
  delete(filename: string): Promise<ImageInfo>;
  /** Removes temp files of a failed capture (paths outside the temp dir are left alone). Never throws. */
  discard(paths: string[]): Promise<void>;
  /**
   * Records that `channel` (`mqtt`, `http`: lowercase, up to 32 characters) delivered the image;
   * resolves once the mark is on disk. invalid_filename, bad_request (channel), not_found.
   */
  markDelivered(filename: string, channel: string): Promise<void>;
  usage(): StorageUsage;
  on<E extends keyof StoreEvents>(event: E, listener: StoreEvents[E]): void;
  off<E extends keyof StoreEvents>(event: E, listener: StoreEvents[E]): void;
}

export interface StoreOptions {
  dir: string;
  limitBytes: number;
  /** Keep at least this much real disk space free. */
  minFreeBytes: number;
  /** When false, never evict an image that no channel has delivered (reserve fails instead). */
  evictUndelivered: boolean;
}

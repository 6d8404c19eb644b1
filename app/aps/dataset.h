/* Training images for the diffusion prior: N images held as float [N, C, H, W] in [-1, 1]
 * (a byte v maps to v / 127.5 − 1, so 0 → −1 and 255 → 1).
 *
 * Sources:
 *  - IDX files (the MNIST family's format), gzip-compressed or plain: unsigned-byte images,
 *    3 dimensions (count, rows, cols). The file must hold exactly the bytes its header
 *    declares; anything else is APS_ERR_FORMAT with the file name, what was expected and
 *    what was found. Images can be padded, centred, to a larger square with the background
 *    value −1 (Fashion-MNIST: 28×28 → 32×32, 2 pixels each side).
 *  - Fashion-MNIST as Debian's dataset-fashion-mnist installs it
 *    (/usr/share/datasets/fashion-mnist/{train,t10k}-images-idx3-ubyte.gz).
 *  - A folder of PNGs: every *.png in it, sorted by name, each exactly size × size (no
 *    silent resizing), converted to 1 (gray) or 3 (RGB) channels; alpha is dropped.
 *
 * Batches sample indices uniformly with replacement from a small deterministic PRNG
 * (splitmix64) whose whole state is one uint64 the caller keeps, so a training run that
 * saves it in a checkpoint resumes with exactly the batches it would have drawn.
 *
 * Every function returns an aps_status and on failure leaves a message (aps_last_error())
 * naming the file and what was wrong; nothing aborts on a malformed file. */
#ifndef APS_DATASET_H
#define APS_DATASET_H

#include <stdint.h>

#include "aps_status.h"
#include "rng.h"

typedef struct aps_dataset aps_dataset;

/* Debian's dataset-fashion-mnist installs the files here. */
#define APS_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* An IDX image file (gzip or plain). pad_to = 0 keeps the file's size; otherwise each
 * image is centred in a pad_to × pad_to square filled with −1 (pad_to must be ≥ rows and
 * cols, and pad_to − rows, pad_to − cols even so the border is the same on both sides). */
aps_status aps_dataset_load_idx(const char *images_path, int pad_to, aps_dataset **out);

/* Fashion-MNIST from dir (NULL = APS_FASHION_MNIST_DIR): the train split (60000 images)
 * when train is 1, the test split (10000) when 0; 1 × 32 × 32 (28 × 28 padded). Reads
 * <split>-images-idx3-ubyte.gz, or the same name without .gz. */
aps_status aps_dataset_load_fashion_mnist(const char *dir, int train, aps_dataset **out);

/* Every *.png in dir (regular files; sorted by name), size × size, channels 1 or 3. */
aps_status aps_dataset_load_png_dir(const char *dir, int size, int channels, aps_dataset **out);

/* The command line's --data: "fashion-mnist" (the train split; channels must be 1 and
 * size ≥ 28, the images padded to size) or a folder of PNGs at size × size × channels. */
aps_status aps_dataset_load(const char *spec, int size, int channels, aps_dataset **out);

/* An IDX label file (magic 0x00000801, gzip or plain): *labels (free()) holds *count bytes. */
aps_status aps_idx_load_labels(const char *path, uint8_t **labels, int64_t *count);

void aps_dataset_free(aps_dataset *d);

int64_t aps_dataset_count(const aps_dataset *d);
int aps_dataset_channels(const aps_dataset *d);
int aps_dataset_height(const aps_dataset *d);
int aps_dataset_width(const aps_dataset *d);
/* [count, channels, height, width], row-major. */
const float *aps_dataset_data(const aps_dataset *d);
/* Where the images came from (the file or folder), for logs. */
const char *aps_dataset_source(const aps_dataset *d);

/* Fills out[batch, C, H, W] with images drawn uniformly (with replacement). For each image
 * in order: one draw picks the index; if hflip, one more draw's top bit says whether to
 * mirror it left–right. *rng_state advances; the same state gives the same batch. */
aps_status aps_dataset_batch(const aps_dataset *d, uint64_t *rng_state, int batch, int hflip, float *out);

#endif

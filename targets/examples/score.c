/*
 * Scores rows with a ctr-edge model through the C API and prints one score per line.
 *
 *   score MODEL.onnx ROWS.f32 [MAX_ROWS]
 *
 * MODEL.onnx has one float input [batch, n_features] (as the bundled example
 * tests/fixtures/movielens_deepfm/model.onnx). ROWS.f32 holds rows of n_features
 * little-endian float32 values back to back (movielens_deepfm_rows.f32 beside this file is the
 * first 64 rows of that fixture's test.npz). The whole file is scored as one batch.
 *
 * Build (host): cargo build -p ctr-edge-ffi --release, then
 *   cc -std=c11 -O2 -Iruntime/ffi/include targets/examples/score.c \
 *      target/release/libctr_edge.a -lm -lpthread -ldl -o score
 */
#include <stdio.h>
#include <stdlib.h>

#include "ctr_edge.h"

/* Exits with the status name and the library's message when `status` is not OK. */
static void check(ctr_edge_status status, const char *what) {
    if (status != CTR_EDGE_STATUS_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", what, ctr_edge_status_name(status),
                ctr_edge_last_error());
        exit(1);
    }
}

/* Reads a whole file; returns NULL on error. */
static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    unsigned char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc(size > 0 ? (size_t)size : 1);
        if (buf != NULL && fread(buf, 1, (size_t)size, f) != (size_t)size) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    *len = (size_t)size;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL.onnx ROWS.f32 [MAX_ROWS]\n", argv[0]);
        return 2;
    }

    ctr_edge_model *model = NULL;
    check(ctr_edge_model_open(argv[1], &model), "ctr_edge_model_open");
    const char *kernels = NULL;
    check(ctr_edge_model_kernel_variant(model, &kernels), "ctr_edge_model_kernel_variant");
    fprintf(stderr, "ctr-edge %s, %s kernels\n", ctr_edge_version(), kernels);

    /* The example expects one float input [batch, n_features]. */
    size_t n_inputs = 0;
    check(ctr_edge_model_input_count(model, &n_inputs), "ctr_edge_model_input_count");
    ctr_edge_io_info input;
    check(ctr_edge_model_input_info(model, 0, &input), "ctr_edge_model_input_info");
    if (n_inputs != 1 || input.dtype != CTR_EDGE_DTYPE_F32 || input.rank != 2 ||
        input.dims[0] != -1 || input.dims[1] <= 0) {
        fprintf(stderr, "expected one float input [batch, n_features]\n");
        return 1;
    }
    size_t n_features = (size_t)input.dims[1];

    size_t bytes = 0;
    float *rows_data = (float *)read_file(argv[2], &bytes);
    if (rows_data == NULL) {
        fprintf(stderr, "cannot read %s\n", argv[2]);
        return 1;
    }
    size_t rows = bytes / (n_features * sizeof(float));
    if (argc == 4) {
        size_t max_rows = (size_t)strtoul(argv[3], NULL, 10);
        rows = rows < max_rows ? rows : max_rows;
    }

    ctr_edge_session *session = NULL;
    check(ctr_edge_session_new(model, &session), "ctr_edge_session_new");
    /* The session keeps the model alive: the caller's reference can go now. */
    ctr_edge_model_free(model);

    size_t shape[2] = {rows, n_features};
    ctr_edge_input batch = {
        .name = input.name, .dtype = CTR_EDGE_DTYPE_F32, .shape = shape, .rank = 2,
        .data = rows_data,
    };
    /* One score per row for the usual [batch, 1] output; a bigger output says how much room
     * it needs and is read again from the session. */
    size_t capacity = rows, written = 0;
    float *scores = malloc((capacity > 0 ? capacity : 1) * sizeof(float));
    if (scores == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    ctr_edge_status status =
        ctr_edge_session_run(session, &batch, 1, 0, scores, capacity, &written);
    if (status == CTR_EDGE_STATUS_BUFFER_TOO_SMALL) {
        capacity = written;
        free(scores);
        scores = malloc(capacity * sizeof(float));
        if (scores == NULL) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        status = ctr_edge_session_output(session, 0, scores, capacity, &written);
    }
    check(status, "ctr_edge_session_run");

    for (size_t i = 0; i < written; i++) {
        printf("%.9g\n", scores[i]);
    }

    free(scores);
    free(rows_data);
    ctr_edge_session_free(session);
    return 0;
}

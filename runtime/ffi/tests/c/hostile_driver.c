/*
 * Opens a model through the C API, feeds every input a batch of synthetic values and prints
 * what happened: the status of the first failing call, or OK and the values of output 0.
 * Used by tests/hostile_c.rs (and under valgrind by it) on the hostile corpus.
 *
 *   hostile_driver MODEL.onnx BATCH FLOAT_FILL ID_FILL
 *
 * Element i of a float input is FLOAT_FILL * ((i % 7 + 1) / 7.0f); element i of an integer
 * input is ID_FILL + i % 3 (the corpus generator computes its references the same way).
 * Symbolic non-batch dimensions are taken as 1. Prints "STATUS <NAME>" on stdout, then on OK
 * one line per value of output 0; the library's message goes to stderr. Exit 0 whenever the
 * library returned (whatever the status), 2 on bad usage, 3 if out of memory.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctr_edge.h"

#define MAX_INPUTS 64

static int report(ctr_edge_status status, const char *what) {
    printf("STATUS %s\n", ctr_edge_status_name(status));
    fprintf(stderr, "%s: %s: %s\n", what, ctr_edge_status_name(status), ctr_edge_last_error());
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL.onnx BATCH FLOAT_FILL ID_FILL\n", argv[0]);
        return 2;
    }
    size_t batch = (size_t)strtoull(argv[2], NULL, 10);
    float fill = strtof(argv[3], NULL);
    long long id_fill = strtoll(argv[4], NULL, 10);

    ctr_edge_model *model = NULL;
    ctr_edge_status s = ctr_edge_model_open(argv[1], &model);
    if (s != CTR_EDGE_STATUS_OK) {
        return report(s, "ctr_edge_model_open");
    }
    size_t n_inputs = 0;
    s = ctr_edge_model_input_count(model, &n_inputs);
    if (s != CTR_EDGE_STATUS_OK || n_inputs > MAX_INPUTS) {
        ctr_edge_model_free(model);
        return report(s, "ctr_edge_model_input_count");
    }
    ctr_edge_session *session = NULL;
    s = ctr_edge_session_new(model, &session);
    if (s != CTR_EDGE_STATUS_OK) {
        ctr_edge_model_free(model);
        return report(s, "ctr_edge_session_new");
    }

    ctr_edge_input inputs[MAX_INPUTS];
    size_t shapes[MAX_INPUTS][8];
    void *buffers[MAX_INPUTS] = {0};
    int failed = 0;
    for (size_t i = 0; i < n_inputs && !failed; i++) {
        ctr_edge_io_info info;
        s = ctr_edge_model_input_info(model, i, &info);
        if (s != CTR_EDGE_STATUS_OK || info.rank > 8) {
            report(s, "ctr_edge_model_input_info");
            failed = 1;
            break;
        }
        size_t count = 1;
        for (size_t d = 0; d < info.rank; d++) {
            size_t dim = d == 0 && info.dims[d] < 0 ? batch : (info.dims[d] < 0 ? 1 : (size_t)info.dims[d]);
            shapes[i][d] = dim;
            count *= dim;
        }
        size_t elem = info.dtype == CTR_EDGE_DTYPE_I64 ? 8 : 4;
        unsigned char *data = malloc(count * elem + 1);
        if (data == NULL) {
            return 3;
        }
        for (size_t k = 0; k < count; k++) {
            if (info.dtype == CTR_EDGE_DTYPE_F32) {
                ((float *)data)[k] = fill * ((float)(k % 7 + 1) / 7.0f);
            } else if (info.dtype == CTR_EDGE_DTYPE_I64) {
                ((int64_t *)data)[k] = (int64_t)(id_fill + (long long)(k % 3));
            } else {
                ((int32_t *)data)[k] = (int32_t)(id_fill + (long long)(k % 3));
            }
        }
        buffers[i] = data;
        inputs[i].name = info.name;
        inputs[i].dtype = info.dtype;
        inputs[i].shape = shapes[i];
        inputs[i].rank = info.rank;
        inputs[i].data = data;
    }
    if (!failed) {
        size_t written = 0;
        s = ctr_edge_session_run(session, inputs, n_inputs, 0, NULL, 0, &written);
        if (s == CTR_EDGE_STATUS_BUFFER_TOO_SMALL || s == CTR_EDGE_STATUS_OK) {
            size_t capacity = written;
            float *out = malloc((capacity > 0 ? capacity : 1) * sizeof(float));
            if (out == NULL) {
                return 3;
            }
            s = ctr_edge_session_output(session, 0, out, capacity, &written);
            if (s == CTR_EDGE_STATUS_OK) {
                printf("STATUS OK\n");
                for (size_t k = 0; k < written; k++) {
                    printf("%.9g\n", out[k]);
                }
            } else {
                report(s, "ctr_edge_session_output");
            }
            free(out);
        } else {
            report(s, "ctr_edge_session_run");
        }
    }
    for (size_t i = 0; i < n_inputs; i++) {
        free(buffers[i]);
    }
    ctr_edge_session_free(session);
    ctr_edge_model_free(model);
    return 0;
}

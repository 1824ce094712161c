// convvae.h compiled alone as C++17 (see CMakeLists.txt for the flags):
// first include, twice, with C linkage for every function.
#include <convvae.h>
#include <convvae.h>

#include <type_traits>

static_assert(CVAE_OK == 0, "CVAE_OK must be 0");
static_assert(CVAE_E_INTERNAL == 9, "status values are pinned");
static_assert(CVAE_LOSS_COUNT >= 5, "loss terms are append-only");
static_assert(std::is_same<decltype(&cvae_model_train),
                           cvae_status (*)(cvae_model *, const cvae_dataset *, int,
                                           cvae_optimizer *, cvae_progress_fn, void *)>::value,
              "cvae_model_train signature");
static_assert(std::is_same<decltype(&cvae_version_number), uint32_t (*)()>::value,
              "cvae_version_number signature");

// Handles are incomplete types: user code can only hold pointers.
static_assert(!std::is_void<cvae_model>::value, "cvae_model is a distinct type");

extern "C" int header_cxx17_probe();
extern "C" int header_cxx17_probe()
{
    cvae_progress_fn fn = nullptr;
    return fn == nullptr ? static_cast<int>(CVAE_OK) : 1;
}

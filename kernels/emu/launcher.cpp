// Non-inline part of the emulator: the last launch error, read by the Rust side, the poison it
// sets when its watchdog abandons a launch, and the record of kernels launched.
#include "cuda_emu.h"

#include <cstdio>
#include <cstdlib>
#include <set>

extern "C" size_t strata_emu_last_error(char* buf, size_t len) {
    std::lock_guard<std::mutex> g(strata_emu::error_mutex());
    const std::string& e = strata_emu::last_error();
    if (buf != nullptr && len > 0) {
        size_t n = e.size() < len - 1 ? e.size() : len - 1;
        std::memcpy(buf, e.data(), n);
        buf[n] = 0;
    }
    return e.size();
}

// Refuses every later launch: `kernel`'s launch was abandoned while still running, and may go
// on using the `__shared__` statics and the fiber stacks.
extern "C" void strata_emu_poison(const char* kernel) {
    std::lock_guard<std::mutex> g(strata_emu::error_mutex());
    if (strata_emu::abandoned_kernel().empty()) strata_emu::abandoned_kernel() = kernel;
}

// Called by each generated `emu_<kernel>` launcher after a launch that ran to completion. The
// first time a kernel completes in this process, its name is appended as a line to the file
// that STRATA_EMU_LAUNCH_LOG names, if set: the kernel-coverage test reads it back.
extern "C" void strata_emu_record_launch(const char* kernel) {
    static std::mutex mutex;
    static std::set<std::string> recorded;
    std::lock_guard<std::mutex> g(mutex);
    if (!recorded.insert(kernel).second) return;
    const char* path = std::getenv("STRATA_EMU_LAUNCH_LOG");
    if (path == nullptr) return;
    if (std::FILE* f = std::fopen(path, "a")) {
        std::fprintf(f, "%s\n", kernel);
        std::fclose(f);
    }
}

// Non-inline part of the emulator: the last launch error, read by the Rust side, and the poison
// it sets when its watchdog abandons a launch.
#include "cuda_emu.h"

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

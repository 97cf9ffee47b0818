// Idempotency keys: UUID v4 from OpenSSL's cryptographically secure generator, so keys of different
// processes and machines never collide in practice.
#pragma once

#include <openssl/rand.h>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include <array>
#include <cstddef>
#include <cstring>
#include <random>
#include <string>

namespace perplexity::detail {

inline void random_bytes(unsigned char* out, std::size_t size) {
    if (RAND_bytes(out, static_cast<int>(size)) != 1) {
        // Only when the OS cannot supply entropy at all; std::random_device is the fallback.
        std::random_device device;
        for (std::size_t i = 0; i < size; ++i) {
            out[i] = static_cast<unsigned char>(device());
        }
    }
}

/// Random bytes for keys, drawn from OpenSSL in batches: one RAND_bytes call costs as much as a whole
/// poll, and a key needs only 16 bytes. The batch is per thread, and thrown away in a child after
/// fork(), so that two processes never hand out the same bytes.
inline void key_bytes(unsigned char* out, std::size_t size) {
    struct Batch {
        std::array<unsigned char, 512> bytes{};
        std::size_t used = 512;
        long owner = 0;
    };
    thread_local Batch batch;
#if defined(__unix__) || defined(__APPLE__)
    const long self = static_cast<long>(::getpid());
#else
    const long self = 1;  // no fork() to guard against
#endif
    if (batch.owner != self || batch.bytes.size() - batch.used < size) {
        random_bytes(batch.bytes.data(), batch.bytes.size());
        batch.used = 0;
        batch.owner = self;
    }
    std::memcpy(out, batch.bytes.data() + batch.used, size);
    // Bytes handed out are not kept.
    std::memset(batch.bytes.data() + batch.used, 0, size);
    batch.used += size;
}

inline std::string uuid_v4() {
    std::array<unsigned char, 16> bytes{};
    key_bytes(bytes.data(), bytes.size());
    bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0F) | 0x40);  // version 4
    bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3F) | 0x80);  // RFC 4122 variant
    static constexpr char hex[] = "0123456789abcdef";
    std::string text;
    text.reserve(36);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            text += '-';
        }
        text += hex[bytes[i] >> 4];
        text += hex[bytes[i] & 0x0F];
    }
    return text;
}

}  // namespace perplexity::detail

// Small string codecs the simulator needs: URL decoding for paths and queries, and base64 for the opaque
// pagination token.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace perplexity_sim::detail {

inline int hex_digit_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// Strict: a stray '%' is an error rather than a literal, so tests notice clients that encode badly.
// `plus_is_space` follows form encoding, which query strings use and paths do not.
inline std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '%') {
            if (i + 2 >= text.size()) {
                return std::nullopt;
            }
            const int high = hex_digit_value(text[i + 1]);
            const int low = hex_digit_value(text[i + 2]);
            if (high < 0 || low < 0) {
                return std::nullopt;
            }
            out.push_back(static_cast<char>(high * 16 + low));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return out;
}

using QueryParams = std::vector<std::pair<std::string, std::string>>;

inline std::optional<QueryParams> parse_query(std::string_view query) {
    QueryParams params;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) {
            continue;
        }
        const auto eq = pair.find('=');
        auto name = percent_decode(pair.substr(0, eq), true);
        auto value =
            percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
        if (!name || !value) {
            return std::nullopt;
        }
        params.emplace_back(std::move(*name), std::move(*value));
    }
    return params;
}

// The last occurrence wins, as in Starlette, which the real API runs on.
inline const std::string* find_param(const QueryParams& params, std::string_view name) {
    const std::string* found = nullptr;
    for (const auto& [key, value] : params) {
        if (key == name) {
            found = &value;
        }
    }
    return found;
}

inline constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

inline std::string base64_encode(std::string_view data) {
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= data.size(); i += 3) {
        const std::uint32_t group = (static_cast<std::uint8_t>(data[i]) << 16) |
                                    (static_cast<std::uint8_t>(data[i + 1]) << 8) |
                                    static_cast<std::uint8_t>(data[i + 2]);
        out.push_back(base64_alphabet[(group >> 18) & 63]);
        out.push_back(base64_alphabet[(group >> 12) & 63]);
        out.push_back(base64_alphabet[(group >> 6) & 63]);
        out.push_back(base64_alphabet[group & 63]);
    }
    const std::size_t rest = data.size() - i;
    if (rest > 0) {
        std::uint32_t group = static_cast<std::uint32_t>(static_cast<std::uint8_t>(data[i])) << 16;
        if (rest == 2) {
            group |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(data[i + 1])) << 8;
        }
        out.push_back(base64_alphabet[(group >> 18) & 63]);
        out.push_back(base64_alphabet[(group >> 12) & 63]);
        out.push_back(rest == 2 ? base64_alphabet[(group >> 6) & 63] : '=');
        out.push_back('=');
    }
    return out;
}

// Strict standard base64 with padding; a token mangled by a missing URL-encoding ('+' turned into ' ')
// must fail here.
inline std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) {
        return std::nullopt;
    }
    std::array<int, 256> values{};
    values.fill(-1);
    for (std::size_t i = 0; i < base64_alphabet.size(); ++i) {
        values[static_cast<unsigned char>(base64_alphabet[i])] = static_cast<int>(i);
    }
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        const bool last = i + 4 == text.size();
        int sextets[4];
        int padding = 0;
        for (int j = 0; j < 4; ++j) {
            const char c = text[i + static_cast<std::size_t>(j)];
            if (c == '=') {
                if (!last || j < 2) {
                    return std::nullopt;
                }
                ++padding;
                sextets[j] = 0;
                continue;
            }
            if (padding > 0) {
                return std::nullopt;  // data after padding
            }
            sextets[j] = values[static_cast<unsigned char>(c)];
            if (sextets[j] < 0) {
                return std::nullopt;
            }
        }
        const std::uint32_t group =
            (static_cast<std::uint32_t>(sextets[0]) << 18) | (static_cast<std::uint32_t>(sextets[1]) << 12) |
            (static_cast<std::uint32_t>(sextets[2]) << 6) | static_cast<std::uint32_t>(sextets[3]);
        out.push_back(static_cast<char>((group >> 16) & 0xff));
        if (padding < 2) {
            out.push_back(static_cast<char>((group >> 8) & 0xff));
        }
        if (padding < 1) {
            out.push_back(static_cast<char>(group & 0xff));
        }
    }
    return out;
}

inline bool iequals_ascii(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i];
        char y = b[i];
        if (x >= 'A' && x <= 'Z') {
            x = static_cast<char>(x - 'A' + 'a');
        }
        if (y >= 'A' && y <= 'Z') {
            y = static_cast<char>(y - 'A' + 'a');
        }
        if (x != y) {
            return false;
        }
    }
    return true;
}

}  // namespace perplexity_sim::detail

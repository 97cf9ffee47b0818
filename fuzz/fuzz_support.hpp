// What the fuzz targets share: the properties they check and the way they carve control bytes off
// an input. Everything here aborts on a broken property, because an abort is what both libFuzzer and
// the replay driver report as a failure.
#pragma once

#include <perplexity/error.hpp>
#include <perplexity/json.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace perplexity_fuzz {

namespace px = perplexity;
namespace json = boost::json;

/// Letters, digits and a dash, like a real key: none of the separators that `to_string(Error)` puts
/// between fields, so a key found in the printed Error must have come whole from one field.
inline constexpr std::string_view api_key = "pplx-Fz7Qx2Lm9Zr4Kd8Wv3";

[[noreturn]] inline void fail(std::string_view property, std::string_view context = {}) {
    std::fprintf(stderr, "fuzz property broken: %.*s\n", static_cast<int>(property.size()), property.data());
    if (!context.empty()) {
        // Bounded, so a huge input does not drown the report.
        const std::size_t shown = std::min<std::size_t>(context.size(), 2000);
        std::fprintf(stderr, "  context: %.*s\n", static_cast<int>(shown), context.data());
    }
    std::abort();
}

inline void check(bool holds, std::string_view property, std::string_view context = {}) {
    if (!holds) {
        fail(property, context);
    }
}

inline bool printable_ascii(std::string_view text) {
    for (const char c : text) {
        if (c < 0x20 || c > 0x7E) {
            return false;
        }
    }
    return true;
}

inline bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

/// The key must not be in any field a user might log, nor in the line `operator<<` prints.
inline void check_key_absent(const px::Error& error, std::string_view key = api_key) {
    const std::string printed = px::to_string(error);
    const auto absent = [&](std::string_view field, std::string_view name) {
        check(field.find(key) == std::string_view::npos, name, printed);
    };
    absent(error.message, "the API key is not in Error::message");
    absent(error.api_type, "the API key is not in Error::api_type");
    absent(error.api_message, "the API key is not in Error::api_message");
    absent(error.api_param, "the API key is not in Error::api_param");
    absent(error.body_excerpt, "the API key is not in Error::body_excerpt");
    absent(error.json_path, "the API key is not in Error::json_path");
    absent(error.job_id.value_or(""), "the API key is not in Error::job_id");
    absent(printed, "the API key is not in to_string(Error)");
}

/// Boost.JSON 1.81 parses some doubles one unit in the last place away from the nearest value, so a
/// number written in its shortest form and read back may come back one step off. Anything further
/// apart is a real difference.
inline bool close_doubles(double a, double b) {
    if (a == b) {
        return true;
    }
    if ((a < 0) != (b < 0)) {
        return false;
    }
    const auto ordered_a = std::bit_cast<std::uint64_t>(a);
    const auto ordered_b = std::bit_cast<std::uint64_t>(b);
    return (ordered_a > ordered_b ? ordered_a - ordered_b : ordered_b - ordered_a) <= 1;
}

/// Structural equality where doubles may differ by that one step; member order is not compared.
inline bool same_json(const json::value& a, const json::value& b) {
    if (a.kind() != b.kind()) {
        return false;
    }
    switch (a.kind()) {
        case json::kind::double_:
            return close_doubles(a.get_double(), b.get_double());
        case json::kind::array: {
            const auto& left = a.get_array();
            const auto& right = b.get_array();
            if (left.size() != right.size()) {
                return false;
            }
            for (std::size_t i = 0; i < left.size(); ++i) {
                if (!same_json(left[i], right[i])) {
                    return false;
                }
            }
            return true;
        }
        case json::kind::object: {
            const auto& left = a.get_object();
            const auto& right = b.get_object();
            if (left.size() != right.size()) {
                return false;
            }
            for (const auto& member : left) {
                const json::value* other = right.if_contains(member.key());
                if (other == nullptr || !same_json(member.value(), *other)) {
                    return false;
                }
            }
            return true;
        }
        default:
            return a == b;
    }
}

/// The properties of decoding any body as T with `parse` (parse_job or parse_job_page):
/// - a failure is a decode Error with a message and a JSON path rooted at '$', and a body that is an
///   object with a string "id" keeps that id in the Error (a paid job is never lost to a bad body);
/// - a success, encoded again, decodes again, and encoding that gives the same JSON (up to the double
///   drift close_doubles allows): what the library writes, it reads back unchanged, so a stored job
///   can be reloaded. The JSON is compared rather than the values, because a first decode keeps what
///   the server sent where the library normalises on encode (a completion's `raw` holds the members
///   as received; an empty status is written as "UNKNOWN"), so `decoded == again` need not hold.
template <class Parse>
void check_decoding(std::string_view body, Parse parse) {
    auto decoded = parse(body);
    if (!decoded) {
        const px::Error& error = decoded.error();
        const std::string printed = px::to_string(error);
        check(error.kind == px::ErrorKind::decode, "a body that does not decode is a decode Error", printed);
        check(!error.message.empty(), "a decode Error has a message", printed);
        check(starts_with(error.json_path, "$"), "a decode Error's json_path starts with '$'", printed);
        if (!error.cause) {
            // The body was JSON (no parse error), so it can be looked at here. The library parses up
            // to depth 64; a looser limit here cannot reject what it accepted.
            json::parse_options options;
            options.max_depth = 1024;
            boost::system::error_code ec;
            const json::value value = json::parse(body, ec, {}, options);
            check(!ec, "a body the library parsed parses here too", printed);
            if (value.is_object()) {
                if (const auto* id = value.get_object().if_contains("id"); id && id->is_string()) {
                    check(error.job_id == std::string(id->get_string()),
                          "a decode Error keeps the id the body named", printed);
                }
            }
        }
        return;
    }
    const std::string encoded = px::to_json_string(*decoded);
    auto again = parse(encoded);
    if (!again) {
        fail("what the library encodes, it decodes",
             px::to_string(again.error()) + "\n  encoded: " + encoded);
    }
    check(same_json(json::value_from(*decoded), json::value_from(*again)),
          "encoding is stable: decode(encode(x)) encodes as x did", encoded);
}

/// Reads control values off the front of an input, leaving the rest as the payload. Missing bytes read
/// as zero, so every input, even an empty one, is usable.
class Input {
  public:
    Input(const std::uint8_t* data, std::size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}

    std::uint8_t byte() {
        if (rest_.empty()) {
            return 0;
        }
        const auto value = static_cast<std::uint8_t>(rest_.front());
        rest_.remove_prefix(1);
        return value;
    }

    std::uint16_t two_bytes() {
        const std::uint16_t low = byte();
        return static_cast<std::uint16_t>(low | (byte() << 8));
    }

    std::string_view rest() const { return rest_; }

  private:
    std::string_view rest_;
};

}  // namespace perplexity_fuzz

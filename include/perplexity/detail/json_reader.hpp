// Decoding primitives that know where they are in the document, so a decode error can name the field.
//
// Paths are a chain of stack frames rendered only when something fails: decoding a healthy body
// allocates nothing for them.
#pragma once

#include <boost/json/value.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace perplexity::detail {

namespace json = boost::json;

class JsonPath {
  public:
    JsonPath() = default;
    JsonPath(const JsonPath& parent, std::string_view key) : parent_(&parent), key_(key) {}
    JsonPath(const JsonPath& parent, std::size_t index) : parent_(&parent), index_(index) {}

    /// e.g. "$.response.choices[0].message".
    std::string render() const {
        std::string out = parent_ ? parent_->render() : std::string("$");
        if (!parent_) {
            return out;
        }
        if (index_) {
            out += '[';
            out += std::to_string(*index_);
            out += ']';
        } else {
            out += '.';
            out += key_;
        }
        return out;
    }

  private:
    const JsonPath* parent_ = nullptr;
    std::string_view key_;
    std::optional<std::size_t> index_;
};

/// Thrown inside the decoders and caught at the single boundary that turns it into an Error.
struct DecodeFailure {
    std::string path;
    std::string problem;
};

[[noreturn]] inline void fail_decode(const JsonPath& at, std::string problem) {
    throw DecodeFailure{at.render(), std::move(problem)};
}

inline const char* describe_kind(const json::value& value) noexcept {
    switch (value.kind()) {
        case json::kind::null:
            return "null";
        case json::kind::bool_:
            return "a boolean";
        case json::kind::int64:
        case json::kind::uint64:
        case json::kind::double_:
            return "a number";
        case json::kind::string:
            return "a string";
        case json::kind::array:
            return "an array";
        case json::kind::object:
            return "an object";
    }
    return "something else";
}

[[noreturn]] inline void fail_type(const json::value& value, const JsonPath& at, const char* wanted) {
    fail_decode(at, std::string("expected ") + wanted + ", found " + describe_kind(value));
}

inline json::object& expect_object(json::value& value, const JsonPath& at) {
    if (!value.is_object()) {
        fail_type(value, at, "an object");
    }
    return value.get_object();
}

inline json::array& expect_array(json::value& value, const JsonPath& at) {
    if (!value.is_array()) {
        fail_type(value, at, "an array");
    }
    return value.get_array();
}

/// Boost.JSON 1.81 reads a number too large for a double (1e999) as infinity, without complaint,
/// and writes infinity back as `Infinity`, which is not JSON. A value that is kept must not hold
/// one, or encoding it again would produce text that no parser accepts.
inline void require_finite_numbers(const json::value& value, const JsonPath& at) {
    switch (value.kind()) {
        case json::kind::double_:
            if (!std::isfinite(value.get_double())) {
                fail_decode(at, "number out of range: too large for a double");
            }
            return;
        case json::kind::array: {
            const json::array& array = value.get_array();
            for (std::size_t i = 0; i < array.size(); ++i) {
                require_finite_numbers(array[i], JsonPath(at, i));
            }
            return;
        }
        case json::kind::object:
            for (const auto& member : value.get_object()) {
                require_finite_numbers(member.value(), JsonPath(at, member.key()));
            }
            return;
        default:
            return;
    }
}

/// How one C++ type is read from JSON. Specialised for scalars here and for model types in
/// json_mapping.hpp.
template <class T>
struct JsonDecoder;

/// Reads into `out`, freshly constructed, where it stands: a decoder with a `decode_into` fills a struct's
/// members, a list's elements or a string's characters in place, with no temporary to move from.
template <class T>
void decode_into(json::value& value, const JsonPath& at, T& out) {
    if constexpr (requires { JsonDecoder<T>::decode_into(value, at, out); }) {
        JsonDecoder<T>::decode_into(value, at, out);
    } else {
        out = JsonDecoder<T>::decode(value, at);
    }
}

template <>
struct JsonDecoder<std::string> {
    static void decode_into(json::value& value, const JsonPath& at, std::string& out) {
        if (!value.is_string()) {
            fail_type(value, at, "a string");
        }
        // Built whole and moved in: cheaper than assign(), whose general replace path this never needs.
        out = std::string(value.get_string());
    }

    static std::string decode(json::value& value, const JsonPath& at) {
        std::string out;
        decode_into(value, at, out);
        return out;
    }
};

template <>
struct JsonDecoder<bool> {
    static bool decode(json::value& value, const JsonPath& at) {
        if (!value.is_bool()) {
            fail_type(value, at, "a boolean");
        }
        return value.get_bool();
    }
};

template <>
struct JsonDecoder<std::int64_t> {
    static std::int64_t decode(json::value& value, const JsonPath& at) {
        switch (value.kind()) {
            case json::kind::int64:
                return value.get_int64();
            case json::kind::uint64:
                if (value.get_uint64() >
                    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
                    fail_decode(at, "integer out of range");
                }
                return static_cast<std::int64_t>(value.get_uint64());
            case json::kind::double_: {
                // Some serialisers write integral values as 1.7e9; accept those, refuse fractions.
                const double number = value.get_double();
                if (std::trunc(number) != number || std::fabs(number) > 9.0e15) {
                    fail_decode(at, "expected an integer, found a fractional or huge number");
                }
                return static_cast<std::int64_t>(number);
            }
            default:
                fail_type(value, at, "an integer");
        }
    }
};

template <>
struct JsonDecoder<double> {
    static double decode(json::value& value, const JsonPath& at) {
        switch (value.kind()) {
            case json::kind::int64:
                return static_cast<double>(value.get_int64());
            case json::kind::uint64:
                return static_cast<double>(value.get_uint64());
            case json::kind::double_:
                require_finite_numbers(value, at);
                return value.get_double();
            default:
                fail_type(value, at, "a number");
        }
    }
};

template <>
struct JsonDecoder<json::value> {
    // Copied, never moved: a completion's parsed object lives on as its `raw`, so JSON kept from inside it
    // must stay there too. The copy lands in the default resource (`out` was made with it, and assignment
    // keeps the target's resource), since the parsed tree may live in an arena that is gone once parsing
    // ends (see parse_body); from that arena a move would have copied anyway.
    static void decode_into(json::value& value, const JsonPath&, json::value& out) { out = value; }

    static json::value decode(json::value& value, const JsonPath&) {
        return json::value(value, json::storage_ptr());
    }
};

/// An object kept as JSON, copied into the default resource like a json::value.
template <>
struct JsonDecoder<json::object> {
    static void decode_into(json::value& value, const JsonPath& at, json::object& out) {
        out = expect_object(value, at);
    }

    static json::object decode(json::value& value, const JsonPath& at) {
        return json::object(expect_object(value, at), json::storage_ptr());
    }
};

template <class T>
struct JsonDecoder<std::vector<T>> {
    static void decode_into(json::value& value, const JsonPath& at, std::vector<T>& out) {
        json::array& array = expect_array(value, at);
        out.reserve(array.size());
        for (std::size_t i = 0; i < array.size(); ++i) {
            detail::decode_into(array[i], JsonPath(at, i), out.emplace_back());
        }
    }

    static std::vector<T> decode(json::value& value, const JsonPath& at) {
        std::vector<T> out;
        decode_into(value, at, out);
        return out;
    }
};

/// A member the contract requires: absent or null is an error naming it.
template <class T>
T required_member(json::object& object, std::string_view key, const JsonPath& at) {
    const JsonPath here(at, key);
    json::value* member = object.if_contains(key);
    if (member == nullptr) {
        fail_decode(here, "required field is missing");
    }
    if (member->is_null()) {
        fail_decode(here, "required field is null");
    }
    return JsonDecoder<T>::decode(*member, here);
}

}  // namespace perplexity::detail

// Field tables: one list per model type of its JSON members, read by both the decoder and the encoder.
//
// A type's table (a specialisation of JsonFields) names each member once, with whether decoding insists on
// it and what encoding writes when it is absent. Decoding and encoding are folds over that table, so they
// cannot disagree about a member's name or its rules, and every exception to the rules stands in the table
// where a reader of the type looks. The table is a constexpr value: the fold over it resolves every name
// and member pointer at compile time, and a field costs what a hand-written line for it would.
#pragma once

#include <perplexity/detail/json_reader.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>

#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace perplexity::detail {

/// Whether decoding insists on a member. Required: missing or null is a decode error naming it.
/// Optional: missing and null both leave the C++ member as constructed (empty, or its default value).
enum class Presence { required, optional };

/// What encoding writes for an optional member whose C++ value is empty. The rule is `left_out`; `null`
/// is the exception, for members the API itself always writes, so the table entry says why.
enum class WhenAbsent { left_out, null };

/// Specialised for each model type with `static constexpr FieldTable fields`, its field descriptors in
/// the order decoding checks them (so the first problem in that order is the one reported).
template <class T>
struct JsonFields;

/// A table's entries, in order: the least that holds values of different types. Not std::tuple: built
/// for every table in every translation unit that includes the mapping, its machinery made g++ 12 spend
/// a third more instructions and memory on <perplexity/json.hpp> alone than the hand-written mapping it
/// replaces; this list costs a few percent. An entry may be another table, whose entries then stand in
/// its place (a Job's table starts with JobSummary's).
template <class... Entries>
struct FieldTable;

template <>
struct FieldTable<> {};

template <class First, class... Rest>
struct FieldTable<First, Rest...> {
    constexpr explicit FieldTable(First first_entry, Rest... other_entries)
        : first(first_entry), rest(other_entries...) {}

    First first;
    FieldTable<Rest...> rest;
};

template <class... Entries>
FieldTable(Entries...) -> FieldTable<Entries...>;

/// Calls `visit` with every field of `table`, in order; the recursion unrolls at compile time.
template <class Visit>
constexpr void for_each_field(const FieldTable<>&, const Visit&) {}

template <class First, class... Rest, class Visit>
constexpr void for_each_field(const FieldTable<First, Rest...>& table, const Visit& visit);

template <class Field, class Visit>
constexpr void visit_entry(const Field& field, const Visit& visit) {
    visit(field);
}

template <class... Entries, class Visit>
constexpr void visit_entry(const FieldTable<Entries...>& nested, const Visit& visit) {
    for_each_field(nested, visit);
}

template <class First, class... Rest, class Visit>
constexpr void for_each_field(const FieldTable<First, Rest...>& table, const Visit& visit) {
    visit_entry(table.first, visit);
    for_each_field(table.rest, visit);
}

/// Empty in the sense of "nothing to write": an empty optional or pointer, an empty list (the API's lists
/// are optional, and an empty one says nothing), a null message content. A plain value is never empty.
template <class T>
bool holds_nothing(const T&) noexcept {
    return false;
}
template <class T>
bool holds_nothing(const std::optional<T>& value) noexcept {
    return !value;
}
template <class T>
bool holds_nothing(const std::shared_ptr<T>& value) noexcept {
    return !value;
}
template <class T>
bool holds_nothing(const std::vector<T>& value) noexcept {
    return value.empty();
}
template <class... Alternatives>
bool holds_nothing(const std::variant<std::monostate, Alternatives...>& value) noexcept {
    return value.index() == 0;
}

/// The value inside a member that is not empty.
template <class T>
const T& held_value(const T& value) noexcept {
    return value;
}
template <class T>
const T& held_value(const std::optional<T>& value) noexcept {
    return *value;
}
template <class T>
const T& held_value(const std::shared_ptr<T>& value) noexcept {
    return *value;
}

/// The type a member's JSON decodes to: what the optional or shared pointer holds, or the member's own.
template <class Member>
struct held_type {
    using type = Member;
};
template <class T>
struct held_type<std::optional<T>> {
    using type = T;
};
template <class T>
struct held_type<std::shared_ptr<const T>> {
    using type = T;
};

template <class Member>
inline constexpr bool is_optional = false;
template <class T>
inline constexpr bool is_optional<std::optional<T>> = true;

template <class Member>
inline constexpr bool is_shared_ptr = false;
template <class T>
inline constexpr bool is_shared_ptr<std::shared_ptr<T>> = true;

/// How a value of T is read and written when nothing special is needed: JsonDecoder<T> to read, and
/// Boost.JSON's value_from (this library's tag_invoke overloads for model types) or the enum's API
/// spelling to write. A codec reads into the value in place (see decode_into); one whose `decode` takes
/// the member itself (an optional, say) is handed the member, to decide for itself whether it is set.
template <class T>
struct JsonCodec {
    static void decode(json::value& value, const JsonPath& at, T& out) { decode_into(value, at, out); }

    static json::value encode(const T& value, const json::storage_ptr& storage) {
        if constexpr (std::is_enum_v<T>) {
            return json::value(to_string(value), storage);
        } else {
            return json::value_from(value, storage);
        }
    }
};

/// A table entry for a member reached through a member pointer, read and written by Codec (the default
/// one, or a special one named in the table).
template <class Owner, class Member, class Codec>
struct MemberField {
    std::string_view name;
    Member Owner::*member;
    Presence presence;
    WhenAbsent when_absent;

    void decode(Owner& owner, json::value& value, const JsonPath& at) const {
        Member& target = owner.*member;
        if constexpr (requires { Codec::decode(value, at, target); }) {
            Codec::decode(value, at, target);
        } else if constexpr (is_optional<Member>) {
            Codec::decode(value, at, target.emplace());
        } else {
            auto made = std::make_shared<typename held_type<Member>::type>();
            Codec::decode(value, at, *made);
            target = std::move(made);
        }
    }

    bool absent_in(const Owner& owner) const noexcept { return holds_nothing(owner.*member); }

    json::value encode(const Owner& owner, const json::storage_ptr& storage) const {
        return Codec::encode(held_value(owner.*member), storage);
    }
};

template <class Member>
using default_codec = JsonCodec<typename held_type<Member>::type>;

/// A member the API contract requires. It is always written.
template <class Codec = void, class Owner, class Member>
constexpr auto required_field(std::string_view name, Member Owner::*member) {
    static_assert(!is_optional<Member> && !is_shared_ptr<Member>, "a required member always has a value");
    using Chosen = std::conditional_t<std::is_void_v<Codec>, default_codec<Member>, Codec>;
    return MemberField<Owner, Member, Chosen>{name, member, Presence::required, WhenAbsent::left_out};
}

/// A member decoding does without. Written when not empty; when empty, left out unless `when_absent`
/// says null.
template <class Codec = void, class Owner, class Member>
constexpr auto optional_field(std::string_view name, Member Owner::*member,
                              WhenAbsent when_absent = WhenAbsent::left_out) {
    using Chosen = std::conditional_t<std::is_void_v<Codec>, default_codec<Member>, Codec>;
    return MemberField<Owner, Member, Chosen>{name, member, Presence::optional, when_absent};
}

template <class Field, class Owner>
void decode_field(const Field& field, json::object& object, const JsonPath& at, Owner& owner) {
    json::value* member = object.if_contains(field.name);
    if (field.presence == Presence::required) {
        if (member == nullptr) {
            fail_decode(JsonPath(at, field.name), "required field is missing");
        }
        if (member->is_null()) {
            fail_decode(JsonPath(at, field.name), "required field is null");
        }
    } else if (member == nullptr || member->is_null()) {
        return;
    }
    field.decode(owner, *member, JsonPath(at, field.name));
}

/// Reads every member of Owner's table from `object` into `owner`; members not in the table are ignored.
template <class Owner>
void decode_fields(json::object& object, const JsonPath& at, Owner& owner) {
    for_each_field(JsonFields<Owner>::fields,
                   [&](const auto& field) { decode_field(field, object, at, owner); });
}

template <class Field, class Owner>
void encode_field(const Field& field, json::object& object, const Owner& owner) {
    if (field.presence == Presence::optional && field.absent_in(owner)) {
        if (field.when_absent == WhenAbsent::null) {
            object.insert_or_assign(field.name, nullptr);
        } else {
            // Erased rather than skipped: a completion is written over its raw JSON, which may hold it.
            // Stable, so the members around it keep the order they were received in.
            object.stable_erase(field.name);
        }
        return;
    }
    object.insert_or_assign(field.name, field.encode(owner, object.storage()));
}

/// Writes every member of Owner's table into `object`, over whatever it already holds.
template <class Owner>
void encode_fields(json::object& object, const Owner& owner) {
    for_each_field(JsonFields<Owner>::fields, [&](const auto& field) { encode_field(field, object, owner); });
}

/// Whether `key` names a member of Owner's table (for types that keep the members their table lacks).
template <class Owner>
bool is_field_name(std::string_view key) noexcept {
    bool found = false;
    for_each_field(JsonFields<Owner>::fields, [&](const auto& field) { found = found || field.name == key; });
    return found;
}

/// Decodes a JSON object into T through T's table alone.
template <class T>
struct TableDecoder {
    static void decode_into(json::value& value, const JsonPath& at, T& out) {
        decode_fields(expect_object(value, at), at, out);
    }

    static T decode(json::value& value, const JsonPath& at) {
        T out;
        decode_into(value, at, out);
        return out;
    }
};

}  // namespace perplexity::detail

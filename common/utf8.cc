#include "common/utf8.h"

namespace semshare {

bool DecodeUtf8Char(absl::string_view text, char32_t* code_point, int* length) {
  const auto byte = [&text](size_t i) { return static_cast<unsigned char>(text[i]); };
  const auto is_continuation = [&](size_t i) {
    return i < text.size() && (byte(i) & 0xC0) == 0x80;
  };
  *length = 1;
  *code_point = 0;
  const unsigned char lead = byte(0);
  if (lead < 0x80) {
    *code_point = lead;
    return true;
  }
  int needed;
  char32_t value;
  char32_t minimum;
  if (lead >= 0xC2 && lead <= 0xDF) {
    needed = 1;
    value = lead & 0x1F;
    minimum = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    needed = 2;
    value = lead & 0x0F;
    minimum = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    needed = 3;
    value = lead & 0x07;
    minimum = 0x10000;
  } else {
    return false;
  }
  for (int i = 1; i <= needed; ++i) {
    if (!is_continuation(i)) return false;
    value = (value << 6) | (byte(i) & 0x3F);
  }
  if (value < minimum || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return false;
  *code_point = value;
  *length = needed + 1;
  return true;
}

size_t FindInvalidUtf8(absl::string_view text) {
  for (size_t at = 0; at < text.size();) {
    char32_t code_point = 0;
    int length = 1;
    if (!DecodeUtf8Char(text.substr(at), &code_point, &length)) return at;
    at += static_cast<size_t>(length);
  }
  return absl::string_view::npos;
}

void AppendUtf8(char32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

void AppendUtf8Lossy(absl::string_view bytes, std::string* out) {
  while (!bytes.empty()) {
    char32_t code_point;
    int length;
    if (DecodeUtf8Char(bytes, &code_point, &length)) {
      out->append(bytes.data(), static_cast<size_t>(length));
      bytes.remove_prefix(static_cast<size_t>(length));
      continue;
    }
    // The longest prefix of a well-formed sequence counts as one error.
    const auto lead = static_cast<unsigned char>(bytes[0]);
    size_t needed = 0;
    unsigned char second_low = 0x80;
    unsigned char second_high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      needed = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      needed = 2;
      if (lead == 0xE0) second_low = 0xA0;
      if (lead == 0xED) second_high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      needed = 3;
      if (lead == 0xF0) second_low = 0x90;
      if (lead == 0xF4) second_high = 0x8F;
    }
    size_t consumed = 1;
    if (needed > 0 && bytes.size() > 1) {
      const auto second = static_cast<unsigned char>(bytes[1]);
      if (second >= second_low && second <= second_high) {
        consumed = 2;
        while (consumed <= needed && consumed < bytes.size() &&
               (static_cast<unsigned char>(bytes[consumed]) & 0xC0) == 0x80) {
          ++consumed;
        }
      }
    }
    out->append(kUtf8ReplacementChar.data(), kUtf8ReplacementChar.size());
    bytes.remove_prefix(consumed);
  }
}

}  // namespace semshare

// The explorer's page (apps/melanoma/web/*), embedded into the binary at build time by
// cmake/EmbedWeb.cmake: a fixed table looked up by exact name, so no URL reaches the disk.
#pragma once
#include <string_view>

namespace mel {

struct WebAsset {
  std::string_view path;  // "/index.html", "/explorer.js", ...
  std::string_view type;  // Content-Type
  std::string_view body;
};

// The asset of a request path ("/" is "/index.html"); nullptr when there is none.
const WebAsset* find_web_asset(std::string_view path);

}  // namespace mel

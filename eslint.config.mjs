// ESLint for the book's own JavaScript (make lint; formatting is prettier's, see .prettierrc).
// The runtime and the explorers run in the reader's browser; book/_ext's build scripts and the
// unit tests (tests/js) run in node.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/**", "_build/**", ".venv/**"] },
  js.configs.recommended,
  {
    files: ["**/*.js", "**/*.mjs"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module" },
    rules: {
      // arguments an ATen schema passes but an operation ignores are named with a leading _
      "no-unused-vars": ["error", { argsIgnorePattern: "^_", caughtErrors: "none" }],
      // prettier wraps code at 99 columns (.prettierrc) but not comments or strings
      "max-len": ["error", { code: 99, ignoreUrls: true }],
    },
  },
  {
    files: [
      "src/visual_attention/views/static/*.js",
      "book/_ext/*.js",
      "book/_ext/embed/entry.js",
    ],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    files: ["book/_ext/embed/build.mjs", "tests/js/**/*.mjs", "eslint.config.mjs"],
    languageOptions: { globals: { ...globals.node } },
  },
];

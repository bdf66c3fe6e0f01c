/* Mainland website chat widget: see docs/chat.md. (The widget itself follows in the next commit.) */

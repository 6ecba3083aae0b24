// Placeholder, replaced below.
export async function render(main) {
  main.replaceChildren(document.createTextNode('…'));
}

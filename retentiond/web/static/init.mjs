// Progressive enhancement only: every page works without JavaScript.
import { initAll } from '/govuk/govuk-frontend.min.js'
initAll()

// "Select all" on the review queue.
for (const box of document.querySelectorAll('[data-select-all]')) {
  box.addEventListener('change', () => {
    for (const item of document.querySelectorAll(box.dataset.selectAll)) {
      item.checked = box.checked
    }
  })
}
